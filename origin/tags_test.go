package origin

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestDocumentTag(t *testing.T) {
	a := DocumentTag("products", "p1")
	if a != DocumentTag("products", "p1") {
		t.Fatalf("DocumentTag is not deterministic")
	}
	for _, other := range []string{DocumentTag("products", "p2"), DocumentTag("users", "p1"), DocumentTag("product", "sp1"), CollectionTag("products")} {
		if other == a {
			t.Errorf("tag %q collides with DocumentTag(products, p1)", other)
		}
	}
	if len(a) != 17 || a[0] != 'd' || !tagSafe(a) {
		t.Errorf("got tag %q, want 'd' + 16 base32 characters", a)
	}
	// The scheme is documented for other tools; this value came from
	// printf 'doc\0products\0001' | sha256sum | cut -c1-20 | xxd -r -p | base32 | tr A-Z a-z
	if got, want := DocumentTag("products", "1"), "daxpi4iqn47cdrcts"; got != want {
		t.Errorf("DocumentTag(products, 1): got %q, want %q", got, want)
	}
}

func TestSetCacheTags(t *testing.T) {
	h := http.Header{}
	SetCacheTags(h, "a", "b", "a", "", "bad tag", "c,d", "e")
	if got, want := h.Get("Surrogate-Key"), "a b e"; got != want {
		t.Errorf("Surrogate-Key: got %q, want %q", got, want)
	}
	if got, want := h.Get("xkey"), "a b e"; got != want {
		t.Errorf("xkey: got %q, want %q", got, want)
	}
	var many []string
	for i := range 200 {
		many = append(many, DocumentTag("products", string(rune('a'+i%26))+strings.Repeat("x", i)))
	}
	SetCacheTags(h, many...)
	if n := len(h.Get("xkey")); n > MaxCacheTagBytes || n < MaxCacheTagBytes-20 {
		t.Errorf("got an xkey header of %d bytes, want close to but at most %d", n, MaxCacheTagBytes)
	}
	SetCacheTags(h)
	if _, ok := h["Xkey"]; ok {
		t.Errorf("SetCacheTags with no tags left an xkey header: %v", h)
	}
}

func TestCachePolicy(t *testing.T) {
	for _, tc := range []struct {
		p    CachePolicy
		want string
	}{
		{CachePolicy{}, "private, no-store"},
		{CachePolicy{SMaxAge: 300 * time.Second}, "public, max-age=0, s-maxage=300"},
		{CachePolicy{SMaxAge: 60 * time.Second, StaleWhileRevalidate: 30 * time.Second, StaleIfError: time.Hour}, "public, max-age=0, s-maxage=60, stale-while-revalidate=30, stale-if-error=3600"},
		{CachePolicy{SMaxAge: time.Millisecond}, "public, max-age=0, s-maxage=1"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.p, got, tc.want)
		}
	}
}

// FuzzDocumentTag: any collection and id give a header-safe tag of fixed
// length, the same every time, that SetCacheTags keeps.
func FuzzDocumentTag(f *testing.F) {
	f.Add("products", "p1")
	f.Add("", "")
	f.Add("users", "a b\r\nX-Injected: 1")
	f.Add("é", strings.Repeat("z", 5000))
	f.Fuzz(func(t *testing.T, collection, id string) {
		tag := DocumentTag(collection, id)
		if len(tag) != 17 || !utf8.ValidString(tag) || !tagSafe(tag) {
			t.Fatalf("DocumentTag(%q, %q) = %q: want 17 header-safe bytes", collection, id, tag)
		}
		for i := 1; i < len(tag); i++ {
			if c := tag[i]; !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
				t.Fatalf("DocumentTag(%q, %q) = %q: byte %q outside base32", collection, id, tag, c)
			}
		}
		if again := DocumentTag(collection, id); again != tag {
			t.Fatalf("DocumentTag(%q, %q) gave %q then %q", collection, id, tag, again)
		}
		h := http.Header{}
		SetCacheTags(h, tag, CollectionTag(collection))
		if got := h.Get("xkey"); !strings.HasPrefix(got, tag+" ") || len(got) != 35 {
			t.Fatalf("SetCacheTags wrote xkey %q for %q", got, tag)
		}
	})
}
