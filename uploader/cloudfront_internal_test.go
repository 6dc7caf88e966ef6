package uploader

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestCloudFrontPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/index.html", "/index.html"},
		{"/docs/", "/docs/"},
		{"/a b/c.html", "/a%20b/c.html"},
		{"/docs/café.html", "/docs/caf%C3%A9.html"},
		{"/100%.html", "/100%25.html"},
		{"/q?.html", "/q%3F.html"},
		{"/star*.html", "/star%2A.html"},
		{"/~user/{x}|[y]^`z`#\"<>\\", "/%7Euser/%7Bx%7D%7C%5By%5D%5E%60z%60%23%22%3C%3E%5C"},
		{"/keep-these_chars.!$&'()+,;=:@", "/keep-these_chars.!$&'()+,;=:@"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := cloudFrontPath(tt.in); got != tt.want {
				t.Errorf("cloudFrontPath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzCloudFrontPath checks that the escaped path is plain printable ASCII
// without a bare unsafe character, and unescapes back to the input.
func FuzzCloudFrontPath(f *testing.F) {
	for _, s := range []string{"/index.html", "/a b/café.html", "/100%", "/*?#", "/\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := cloudFrontPath(p)
		for i := 0; i < len(got); i++ {
			c := got[i]
			if c < 0x20 || c >= 0x7f || (strings.IndexByte(" <>\"#{}|\\^~[]`*?", c) >= 0) {
				t.Fatalf("cloudFrontPath(%q) = %q: byte %q at %d is not escaped", p, got, c, i)
			}
		}
		back, err := url.PathUnescape(got)
		if err != nil {
			t.Fatalf("cloudFrontPath(%q) = %q: does not unescape: %v", p, got, err)
		}
		if back != p {
			t.Fatalf("cloudFrontPath(%q) = %q unescapes to %q, want the input", p, got, back)
		}
	})
}

func TestWildcard(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		want  string
	}{
		{"one directory", []string{"/docs/a.html", "/docs/b.html", "/docs/c/"}, "/docs/*"},
		{"directory and its bare form", []string{"/docs", "/docs/", "/docs/index.html"}, "/docs*"},
		{"whole site", []string{"/about.html", "/docs/", "/index.html"}, "/*"},
		{"shared file prefix", []string{"/blog/2024-01.html", "/blog/2024-02.html"}, "/blog/2024-0*"},
		{"never cut a character", []string{"/café/a", "/cafè/b"}, "/caf*"},
		{"shared non-ASCII prefix is escaped", []string{"/é t/a", "/é t/b"}, "/%C3%A9%20t/*"},
		{"unsafe characters in the prefix", []string{"/a*b/1", "/a*b/2"}, "/a%2Ab/*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sorted := slices.Sorted(slices.Values(tt.paths))
			if got := wildcard(sorted); got != tt.want {
				t.Errorf("wildcard(%q) = %q, want %q", sorted, got, tt.want)
			}
		})
	}
}

func TestUncovered(t *testing.T) {
	tests := []struct {
		name        string
		batch, prev []string
		want        []string
	}{
		{"same", []string{"/a", "/b"}, []string{"/a", "/b"}, nil},
		{"superset", []string{"/a", "/b", "/c"}, []string{"/a", "/b"}, []string{"/c"}},
		{"wildcard covers", []string{"/docs/a", "/docs/b", "/x"}, []string{"/docs/*"}, []string{"/x"}},
		{"root wildcard covers all", []string{"/a", "/z/y"}, []string{"/*"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := uncovered(tt.batch, tt.prev)
			if !slices.Equal(got, tt.want) {
				t.Errorf("uncovered(%q, %q) = %q, want %q", tt.batch, tt.prev, got, tt.want)
			}
		})
	}
}

func TestIsBucketDomain(t *testing.T) {
	for _, tc := range []struct {
		domain string
		want   bool
	}{
		{"site.s3.amazonaws.com", true},
		{"site.s3.eu-west-1.amazonaws.com", true},
		{"site.s3-eu-west-1.amazonaws.com", true},
		{"site.s3-website-us-east-1.amazonaws.com", true},
		{"site.s3.cn-north-1.amazonaws.com.cn", true},
		{"site2.s3.amazonaws.com", false},
		{"site.s3x.amazonaws.com", false},
		{"site.example.com", false},
		{"other.site.s3.amazonaws.com", false},
	} {
		if got := isBucketDomain(tc.domain, "site"); got != tc.want {
			t.Errorf("isBucketDomain(%q, site) = %v, want %v", tc.domain, got, tc.want)
		}
	}
}

func TestViewerPaths(t *testing.T) {
	in := []string{"/www", "/www/", "/www/docs/", "/www/index.html", "/wwwx/a.html"}
	for _, tc := range []struct {
		origin string
		want   []string
	}{
		{"", in},
		{"/www", []string{"/", "/docs/", "/index.html"}},
		{"/other", []string{}},
	} {
		if got := viewerPaths(tc.origin, in); !slices.Equal(got, tc.want) {
			t.Errorf("viewerPaths(%q) = %q, want %q", tc.origin, got, tc.want)
		}
	}
}
