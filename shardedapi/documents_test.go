package shardedapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/prometheus/client_golang/prometheus"
)

// newTestDocuments opens a test dataset and a DocumentStore over it with
// the collections "products" (no unique field) and "users" (unique email
// and handle).
func newTestDocuments(t *testing.T, cfg testClusterConfig, cache EntryCache) (*testCluster, *DocumentStore) {
	t.Helper()
	tc := newTestCluster(t, cfg)
	ds, err := NewDocumentStore(tc.Cluster, DocumentStoreOptions{
		Collections: []CollectionConfig{{Name: "products"}, {Name: "users", Unique: []string{"email", "handle"}}},
		Cache:       cache,
		Logger:      cacheTestLogger(t),
	})
	if err != nil {
		t.Fatalf("NewDocumentStore: %v", err)
	}
	return tc, ds
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	va, err := decodeJSON(a)
	if err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	vb, err := decodeJSON(b)
	if err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestDocumentsCRUDOnFourShards(t *testing.T) {
	t.Parallel()
	tc, ds := newTestDocuments(t, testClusterConfig{Shards: 4}, nil)
	ctx := context.Background()
	perShard := map[string]int{}
	for i := range 40 {
		id := fmt.Sprintf("p-%d", i)
		body := fmt.Sprintf(`{"name": "product %d", "price": %d}`, i, i*100)
		d, created, err := ds.Put(ctx, "products", id, json.RawMessage(body), Precondition{})
		if err != nil || !created {
			t.Fatalf("Put %s: got created=%v, %v, want a new document", id, created, err)
		}
		if d.Collection != "products" || d.ID != id || d.Rev == 0 || d.CreatedAt.IsZero() || !d.CreatedAt.Equal(d.UpdatedAt) || !sameJSON(t, d.Body, []byte(body)) {
			t.Fatalf("Put %s returned %+v", id, d)
		}
		loc, err := tc.Cluster.Locate(Key{ID: "products/" + id})
		if err != nil {
			t.Fatal(err)
		}
		perShard[loc.Shard.Name()]++
		var n int
		if err := loc.Shard.Pool().QueryRow(ctx, `SELECT count(*) FROM documents WHERE collection = 'products' AND id = $1 AND bucket = $2`, id, loc.Bucket).Scan(&n); err != nil || n != 1 {
			t.Fatalf("row of %s on shard %s with bucket %d: got %d, %v, want 1", id, loc.Shard.Name(), loc.Bucket, n, err)
		}
		got, err := ds.Get(ctx, "products", id)
		if err != nil || !reflect.DeepEqual(got, d) {
			t.Fatalf("Get %s: got %+v, %v, want %+v", id, got, err, d)
		}
	}
	if len(perShard) != 4 {
		t.Errorf("documents per shard: got %v, want some on each of 4 shards", perShard)
	}

	first, _ := ds.Get(ctx, "products", "p-1")
	replaced, created, err := ds.Put(ctx, "products", "p-1", json.RawMessage(`{"name":"renamed"}`), Precondition{})
	if err != nil || created {
		t.Fatalf("replace: got created=%v, %v", created, err)
	}
	if replaced.Rev == first.Rev || !replaced.CreatedAt.Equal(first.CreatedAt) || !replaced.UpdatedAt.After(first.UpdatedAt) || string(replaced.Body) != `{"name": "renamed"}` {
		t.Errorf("replace: got %+v after %+v, want a new rev, the same creation time, the new body", replaced, first)
	}
	patched, err := ds.Patch(ctx, "products", "p-1", json.RawMessage(`{"price": 5, "tags": ["a"], "name": null}`), Precondition{})
	if err != nil || !sameJSON(t, patched.Body, []byte(`{"price":5,"tags":["a"]}`)) || patched.Rev == replaced.Rev {
		t.Fatalf("Patch: got %+v, %v", patched, err)
	}
	if got, err := ds.Get(ctx, "products", "p-1"); err != nil || !reflect.DeepEqual(got, patched) {
		t.Errorf("Get after Patch: got %+v, %v, want %+v", got, err, patched)
	}
	if err := ds.Delete(ctx, "products", "p-1", Precondition{}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := ds.Get(ctx, "products", "p-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: got %v, want ErrNotFound", err)
	}
	if err := ds.Delete(ctx, "products", "p-1", Precondition{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete twice: got %v, want ErrNotFound", err)
	}
	if _, err := ds.Patch(ctx, "products", "p-1", json.RawMessage(`{}`), Precondition{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Patch of a deleted document: got %v, want ErrNotFound", err)
	}
	// Delete + re-create: a new revision, never an old one.
	again, created, err := ds.Put(ctx, "products", "p-1", json.RawMessage(`{"name":"renamed"}`), Precondition{})
	if err != nil || !created {
		t.Fatalf("re-create: got created=%v, %v", created, err)
	}
	for _, old := range []int64{first.Rev, replaced.Rev, patched.Rev} {
		if again.Rev == old {
			t.Errorf("re-created document got rev %d, used before", again.Rev)
		}
	}
	if !again.CreatedAt.After(first.CreatedAt) {
		t.Errorf("re-created document: created %v, want after the first creation %v", again.CreatedAt, first.CreatedAt)
	}
}

func TestDocumentsPreconditions(t *testing.T) {
	t.Parallel()
	_, ds := newTestDocuments(t, testClusterConfig{}, nil)
	ctx := context.Background()
	d, _, err := ds.Put(ctx, "products", "x", json.RawMessage(`{"n":0}`), Precondition{IfAbsent: true})
	if err != nil {
		t.Fatalf("Put IfAbsent of a new document: %v", err)
	}
	if _, _, err := ds.Put(ctx, "products", "x", json.RawMessage(`{"n":1}`), Precondition{IfAbsent: true}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("Put IfAbsent of an existing document: got %v, want ErrPreconditionFailed", err)
	}
	if _, _, err := ds.Put(ctx, "products", "missing", json.RawMessage(`{}`), Precondition{IfRev: d.Rev}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("Put IfRev of a missing document: got %v, want ErrPreconditionFailed", err)
	}
	// The lost update: two clients read rev d.Rev, both write with If-Match.
	a, err := ds.Patch(ctx, "products", "x", json.RawMessage(`{"n":1}`), Precondition{IfRev: d.Rev})
	if err != nil {
		t.Fatalf("first conditional Patch: %v", err)
	}
	if _, err := ds.Patch(ctx, "products", "x", json.RawMessage(`{"n":2}`), Precondition{IfRev: d.Rev}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("second Patch with the old rev: got %v, want ErrPreconditionFailed", err)
	}
	if _, _, err := ds.Put(ctx, "products", "x", json.RawMessage(`{"n":2}`), Precondition{IfRev: d.Rev}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("Put with the old rev: got %v, want ErrPreconditionFailed", err)
	}
	if err := ds.Delete(ctx, "products", "x", Precondition{IfRev: d.Rev}); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("Delete with the old rev: got %v, want ErrPreconditionFailed", err)
	}
	if got, _ := ds.Get(ctx, "products", "x"); got.Rev != a.Rev || string(got.Body) != `{"n": 1}` {
		t.Errorf("after refused writes: got %+v, want the first Patch's rev %d and body", got, a.Rev)
	}
	// Concurrent conditional writes from one read: exactly one wins.
	var wins, lost atomic.Int64
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			_, err := ds.Patch(ctx, "products", "x", json.RawMessage(fmt.Sprintf(`{"n":%d}`, 10+i)), Precondition{IfRev: a.Rev})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, ErrPreconditionFailed):
				lost.Add(1)
			default:
				t.Errorf("concurrent Patch: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || lost.Load() != 9 {
		t.Errorf("10 concurrent Patches with one rev: %d won, %d failed the precondition, want 1 and 9", wins.Load(), lost.Load())
	}
	if err := ds.Delete(ctx, "products", "x", Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ds.Put(ctx, "products", "x", json.RawMessage(`{}`), Precondition{IfAbsent: true}); err != nil {
		t.Errorf("Put IfAbsent after Delete: %v", err)
	}
}

func TestDocumentsValidation(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Shards: 1})
	ds, err := NewDocumentStore(tc.Cluster, DocumentStoreOptions{Collections: []CollectionConfig{{Name: "products"}}, MaxBodyBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		collection, id, body string
		want                 error
		msg                  string
	}{
		{"nope", "a", `{}`, ErrUnknownCollection, ""},
		{"Products", "a", `{}`, ErrUnknownCollection, ""},
		{"products", "", `{}`, ErrInvalidKey, ""},
		{"products", "a/b", `{}`, ErrInvalidKey, ""},
		{"products", "é", `{}`, ErrInvalidKey, ""},
		{"products", strings.Repeat("a", 129), `{}`, ErrInvalidKey, ""},
		{"products", "a", `[]`, ErrInvalidValue, "JSON object"},
		{"products", "a", `"x"`, ErrInvalidValue, "JSON object"},
		{"products", "a", `{"a":1,}`, ErrInvalidValue, "offset 8"},
		{"products", "a", `{"a":1} {}`, ErrInvalidValue, "offset"},
		{"products", "a", `{"a":"` + strings.Repeat("x", 64) + `"}`, ErrDocumentTooLarge, "64-byte limit"},
		{"products", "a", `{"a":"\u0000"}`, ErrInvalidValue, ""},
	} {
		_, _, err := ds.Put(ctx, tt.collection, tt.id, json.RawMessage(tt.body), Precondition{})
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Put(%q, %q, %s): got %v, want %v mentioning %q", tt.collection, tt.id, tt.body, err, tt.want, tt.msg)
		}
	}
	if _, err := ds.Get(ctx, "products", "a b"); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Get of a bad ID: got %v, want ErrInvalidKey", err)
	}
	if _, _, err := ds.Put(ctx, "products", "Az09._~-", json.RawMessage(`{"a":"`+strings.Repeat("x", 40)+`"}`), Precondition{}); err != nil {
		t.Fatalf("Put of a valid document: %v", err)
	}
	if _, err := ds.Patch(ctx, "products", "Az09._~-", json.RawMessage(`{"b":"`+strings.Repeat("y", 40)+`"}`), Precondition{}); !errors.Is(err, ErrDocumentTooLarge) || !errors.Is(err, ErrInvalidValue) {
		t.Errorf("Patch making the document too large: got %v, want ErrDocumentTooLarge (an ErrInvalidValue)", err)
	}
	if _, err := ds.Patch(ctx, "products", "Az09._~-", json.RawMessage(`null`), Precondition{}); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("Patch replacing the object: got %v, want ErrInvalidValue", err)
	}
	for _, c := range []string{"!", "AAAA", "AAAAAAAAAAAA", encodeCursor(Document{ID: "a/b"})} {
		if _, err := ds.List(ctx, "products", 10, c, GatherOptions{}); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("List with cursor %q: got %v, want ErrInvalidValue", c, err)
		}
	}
	for _, n := range []int{0, -1, 1001} {
		if _, err := ds.List(ctx, "products", n, "", GatherOptions{}); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("List with limit %d: got %v, want ErrInvalidValue", n, err)
		}
	}
	for _, opts := range []DocumentStoreOptions{
		{},
		{Collections: []CollectionConfig{{Name: "a"}, {Name: "a"}}},
		{Collections: []CollectionConfig{{Name: "9a"}}},
		{Collections: []CollectionConfig{{Name: "a", Unique: []string{""}}}},
		{Collections: []CollectionConfig{{Name: "a"}}, MaxBodyBytes: -1},
	} {
		if _, err := NewDocumentStore(tc.Cluster, opts); err == nil {
			t.Errorf("NewDocumentStore(%+v): got no error", opts)
		}
	}
}

// The examples of RFC 7386, appendix A, and a few more.
func TestMergePatch(t *testing.T) {
	for _, tt := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{`{"n":12345678901234567890}`, `{"m":1.5e300}`, `{"n":12345678901234567890,"m":1.5e300}`},
		{`{"h":"<&>"}`, `{}`, `{"h":"<&>"}`},
	} {
		got, err := mergePatch([]byte(tt.target), []byte(tt.patch))
		if err != nil {
			t.Errorf("mergePatch(%s, %s): %v", tt.target, tt.patch, err)
			continue
		}
		if !sameJSON(t, got, []byte(tt.want)) {
			t.Errorf("mergePatch(%s, %s) = %s, want %s", tt.target, tt.patch, got, tt.want)
		}
		if strings.Contains(tt.target, "<") && !strings.Contains(string(got), "<&>") {
			t.Errorf("mergePatch escaped HTML: %s", got)
		}
	}
}

// FuzzMergePatch: on valid JSON the result is valid JSON, applying the same
// patch again changes nothing (merge patches are idempotent), and every
// non-null scalar member of an object patch is in the result.
func FuzzMergePatch(f *testing.F) {
	f.Add([]byte(`{"a":"b","c":{"d":1}}`), []byte(`{"a":null,"c":{"e":[1,2]}}`))
	f.Add([]byte(`[1]`), []byte(`{"x":{"y":null}}`))
	f.Add([]byte(`{"a":1}`), []byte(`"s"`))
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		if !json.Valid(target) || !json.Valid(patch) {
			return
		}
		once, err := mergePatch(target, patch)
		if err != nil {
			t.Fatalf("mergePatch(%s, %s): %v", target, patch, err)
		}
		if !json.Valid(once) {
			t.Fatalf("mergePatch(%s, %s) = %s: not valid JSON", target, patch, once)
		}
		twice, err := mergePatch(once, patch)
		if err != nil {
			t.Fatalf("mergePatch again: %v", err)
		}
		if !sameJSON(t, once, twice) {
			t.Fatalf("not idempotent: patch %s on %s gave %s, then %s", patch, target, once, twice)
		}
		p, _ := decodeJSON(patch)
		r, _ := decodeJSON(once)
		if pm, ok := p.(map[string]any); ok {
			rm, ok := r.(map[string]any)
			if !ok {
				t.Fatalf("object patch %s gave a non-object %s", patch, once)
			}
			for k, v := range pm {
				_, isObj := v.(map[string]any)
				if _, in := rm[k]; v == nil && in || v != nil && !isObj && !reflect.DeepEqual(rm[k], v) {
					t.Fatalf("member %q: patch %s, result %s", k, patch, once)
				}
			}
		}
	})
}

func TestDocumentsUniqueFields(t *testing.T) {
	t.Parallel()
	tc, ds := newTestDocuments(t, testClusterConfig{Shards: 4}, nil)
	ctx := context.Background()
	// Many writers, one email, different documents (on different shards):
	// exactly one wins.
	const writers = 24
	var wins atomic.Int64
	var winner atomic.Value
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			id := fmt.Sprintf("u%d", i)
			email := "Ada@Example.com"
			if i%2 == 1 {
				email = "ada@example.COM"
			}
			_, _, err := ds.Put(ctx, "users", id, json.RawMessage(`{"email":"`+email+`"}`), Precondition{})
			var ufe *UniqueFieldError
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(id)
			case errors.Is(err, ErrTaken) && errors.As(err, &ufe) && ufe.Field == "email" && ufe.Collection == "users":
			default:
				t.Errorf("Put %s: got %v, want success or ErrTaken naming field email", id, err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent Puts of one email: %d won, want exactly 1", writers, wins.Load())
	}
	owner := winner.Load().(string)
	shards := map[string]bool{}
	for i := range writers {
		loc, _ := tc.Cluster.Locate(Key{ID: fmt.Sprintf("users/u%d", i)})
		shards[loc.Shard.Name()] = true
	}
	if len(shards) < 2 {
		t.Errorf("the writers' documents are on %d shard(s), want several", len(shards))
	}
	if d, err := ds.Lookup(ctx, "users", "email", "ADA@example.com"); err != nil || d.ID != owner {
		t.Errorf("Lookup email: got %+v, %v, want %s", d, err, owner)
	}
	var n int
	if err := tc.Cluster.Catalog().QueryRow(ctx, `SELECT count(*) FROM unique_claims WHERE namespace = 'doc.users.email'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("claims of doc.users.email: got %d, %v, want 1", n, err)
	}

	// The owner rewrites its own document (same email): fine.
	if _, _, err := ds.Put(ctx, "users", owner, json.RawMessage(`{"email":"ada@example.com","handle":"ada"}`), Precondition{}); err != nil {
		t.Fatalf("rewrite by the owner: %v", err)
	}
	other := "u-other"
	if _, _, err := ds.Put(ctx, "users", other, json.RawMessage(`{"email":"bob@example.com","handle":"ADA"}`), Precondition{}); !errors.Is(err, ErrTaken) {
		t.Errorf("second field taken: got %v, want ErrTaken", err)
	} else if ufe := (*UniqueFieldError)(nil); !errors.As(err, &ufe) || ufe.Field != "handle" {
		t.Errorf("second field taken: got %v, want a UniqueFieldError naming handle", err)
	}
	// The refused write left no claim on bob@.
	if _, err := tc.Cluster.claimOwner(ctx, "doc.users.email", "bob@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("claim of the refused write's other field: got %v, want none (ErrNotFound)", err)
	}
	// Changing a unique field frees the old value.
	if _, err := ds.Patch(ctx, "users", owner, json.RawMessage(`{"email":"ada@new.example"}`), Precondition{}); err != nil {
		t.Fatalf("change email: %v", err)
	}
	if _, _, err := ds.Put(ctx, "users", other, json.RawMessage(`{"email":"ada@example.com"}`), Precondition{}); err != nil {
		t.Errorf("take the freed email: %v", err)
	}
	if _, _, err := ds.Put(ctx, "users", "u-third", json.RawMessage(`{"email":"ADA@new.example"}`), Precondition{}); !errors.Is(err, ErrTaken) {
		t.Errorf("take the new email: got %v, want ErrTaken", err)
	}
	// Null removes the field and frees it; delete frees everything.
	if _, err := ds.Patch(ctx, "users", owner, json.RawMessage(`{"email":null}`), Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ds.Put(ctx, "users", "u-third", json.RawMessage(`{"email":"ADA@new.example"}`), Precondition{}); err != nil {
		t.Errorf("take the email removed by a null: %v", err)
	}
	if err := ds.Delete(ctx, "users", owner, Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ds.Put(ctx, "users", "u-fourth", json.RawMessage(`{"handle":"ada"}`), Precondition{}); err != nil {
		t.Errorf("take the deleted document's handle: %v", err)
	}
	if _, _, err := ds.Put(ctx, "users", "u-fifth", json.RawMessage(`{"email":5}`), Precondition{}); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("non-string unique field: got %v, want ErrInvalidValue", err)
	}
	// A stale claim (its document never committed) is taken over.
	if _, err := tc.Cluster.Catalog().Exec(ctx, `INSERT INTO unique_claims (namespace, value, owner, owner_key, claimed_at)
		VALUES ('doc.users.email', 'ghost@example.com', 0, 'users/ghost', now() - interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ds.Put(ctx, "users", "u-sixth", json.RawMessage(`{"email":"ghost@example.com"}`), Precondition{}); err != nil {
		t.Errorf("take over a stale claim: %v", err)
	}
	// Users' email claims (owned by IDs) still work beside documents'.
	if _, err := tc.Store.CreateUser(ctx, NewUser{Email: "ada@example.com"}); err != nil {
		t.Errorf("CreateUser beside document claims: %v", err)
	}
}

func TestDocumentsListPaginates(t *testing.T) {
	t.Parallel()
	_, ds := newTestDocuments(t, testClusterConfig{Shards: 4}, nil)
	ctx := context.Background()
	const n = 150
	for i := range n {
		if _, _, err := ds.Put(ctx, "products", fmt.Sprintf("p%03d", i), json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	// Another collection's documents stay out of the list.
	if _, _, err := ds.Put(ctx, "users", "x", json.RawMessage(`{}`), Precondition{}); err != nil {
		t.Fatal(err)
	}
	var all []Document
	cursor := ""
	pages := 0
	for {
		page, err := ds.List(ctx, "products", 7, cursor, GatherOptions{})
		if err != nil {
			t.Fatalf("List page %d: %v", pages, err)
		}
		if page.Partial || len(page.Failures) != 0 {
			t.Fatalf("List page %d: partial %v", pages, page.Failures)
		}
		pages++
		all = append(all, page.Documents...)
		if page.Next == "" {
			break
		}
		if len(page.Documents) != 7 {
			t.Fatalf("page %d has %d documents and a next cursor, want 7", pages, len(page.Documents))
		}
		cursor = page.Next
		if pages > n {
			t.Fatal("List does not end")
		}
	}
	if len(all) != n {
		t.Fatalf("listed %d documents, want %d", len(all), n)
	}
	seen := map[string]bool{}
	for i, d := range all {
		if seen[d.ID] {
			t.Errorf("document %s listed twice", d.ID)
		}
		seen[d.ID] = true
		if d.Collection != "products" {
			t.Errorf("listed %s/%s", d.Collection, d.ID)
		}
		if i > 0 {
			p := all[i-1]
			if d.CreatedAt.After(p.CreatedAt) || d.CreatedAt.Equal(p.CreatedAt) && d.ID >= p.ID {
				t.Errorf("out of order at %d: %s (%v) after %s (%v)", i, d.ID, d.CreatedAt, p.ID, p.CreatedAt)
			}
		}
	}
	// Sequential writes: newest first is the reverse write order.
	if all[0].ID != fmt.Sprintf("p%03d", n-1) || all[n-1].ID != "p000" {
		t.Errorf("first and last listed: %s, %s, want p%03d, p000", all[0].ID, all[n-1].ID, n-1)
	}
	page, err := ds.List(ctx, "products", 1000, "", GatherOptions{})
	if err != nil || len(page.Documents) != n || page.Next != "" {
		t.Errorf("List all: got %d documents, next %q, %v", len(page.Documents), page.Next, err)
	}
}

func TestDocumentsStoppedShard(t *testing.T) {
	t.Parallel()
	tc, ds := newTestDocuments(t, testClusterConfig{Shards: 4, PrivateShard: true, Layout: Layout{Buckets: 64}}, nil)
	ctx := context.Background()
	const down = "s3"
	byShard := map[string][]string{}
	for i := range 60 {
		id := fmt.Sprintf("d%d", i)
		if _, _, err := ds.Put(ctx, "products", id, json.RawMessage(`{}`), Precondition{}); err != nil {
			t.Fatal(err)
		}
		loc, _ := tc.Cluster.Locate(Key{ID: "products/" + id})
		byShard[loc.Shard.Name()] = append(byShard[loc.Shard.Name()], id)
	}
	if len(byShard[down]) == 0 || len(byShard) != 4 {
		t.Fatalf("documents per shard: %v, want some on each", byShard)
	}
	tc.Private.Stop(t)
	for shard, ids := range byShard {
		for _, id := range ids {
			_, err := ds.Get(ctx, "products", id)
			if shard != down {
				if err != nil {
					t.Errorf("Get %s on live shard %s: %v", id, shard, err)
				}
				continue
			}
			var se *ShardError
			if !errors.Is(err, ErrShardUnavailable) || !errors.As(err, &se) || se.Shard != down {
				t.Errorf("Get %s on the stopped shard: got %v, want ErrShardUnavailable from %s", id, err, down)
			}
		}
	}
	_, _, err := ds.Put(ctx, "products", byShard[down][0], json.RawMessage(`{}`), Precondition{})
	if !errors.Is(err, ErrShardUnavailable) {
		t.Errorf("Put on the stopped shard: got %v, want ErrShardUnavailable", err)
	}
	if _, _, err := ds.Put(ctx, "products", byShard["s0"][0], json.RawMessage(`{"v":2}`), Precondition{}); err != nil {
		t.Errorf("Put on a live shard: %v", err)
	}
	page, err := ds.List(ctx, "products", 100, "", GatherOptions{PerShardTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("List with a shard down: %v", err)
	}
	if !page.Partial || len(page.Failures) != 1 || page.Failures[0].Shard != down || !errors.Is(page.Failures[0].Err, ErrShardUnavailable) {
		t.Errorf("List: partial=%v failures=%v, want partial with %s unavailable", page.Partial, page.Failures, down)
	}
	if want := 60 - len(byShard[down]); len(page.Documents) != want {
		t.Errorf("List with a shard down: %d documents, want the %d of the live shards", len(page.Documents), want)
	}
	tc.Private.Start(t)
	for _, id := range byShard[down] {
		if _, err := ds.Get(ctx, "products", id); err != nil {
			t.Errorf("Get %s after the restart: %v", id, err)
		}
	}
}

// With the cache on (L1 too), a read that starts after a write returned
// never sees an older revision, while other readers keep filling the cache.
func TestDocumentsNoStaleReadAfterWrite(t *testing.T) {
	t.Parallel()
	rdb, prefix := testsvc.Redis(t)
	cache := newCacheForTest(t, rdb, CacheOptions{Prefix: prefix, TTL: time.Hour, L1Size: 1000, L1TTL: time.Hour, Registerer: prometheus.NewRegistry()})
	_, ds := newTestDocuments(t, testClusterConfig{Shards: 4}, cache)
	ctx := context.Background()
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		if _, _, err := ds.Put(ctx, "products", id, json.RawMessage(`{"v":0}`), Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the in-process tier is subscribed and serving.
	for before := cacheCount(cache.m.hitL1); cacheCount(cache.m.hitL1) == before; {
		if _, err := ds.Get(ctx, "products", "a"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	floor := make([]atomic.Int64, len(ids))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stale, reads atomic.Int64
	for r := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := (i + r) % len(ids)
				min := floor[k].Load()
				d, err := ds.Get(ctx, "products", ids[k])
				if err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				reads.Add(1)
				if d.Rev < min {
					stale.Add(1)
				}
			}
		})
	}
	for i := range 150 {
		k := i % len(ids)
		d, _, err := ds.Put(ctx, "products", ids[k], json.RawMessage(fmt.Sprintf(`{"v":%d}`, i+1)), Precondition{})
		if err != nil {
			t.Fatal(err)
		}
		floor[k].Store(d.Rev)
		got, err := ds.Get(ctx, "products", ids[k])
		if err != nil || got.Rev != d.Rev || !slices.Equal(got.Body, d.Body) {
			t.Fatalf("Get right after Put: got rev %d %s, %v, want rev %d %s", got.Rev, got.Body, err, d.Rev, d.Body)
		}
	}
	close(stop)
	wg.Wait()
	if stale.Load() != 0 {
		t.Errorf("%d of %d reads returned a revision older than one already written", stale.Load(), reads.Load())
	}
	if cacheCount(cache.m.hitL1)+cacheCount(cache.m.hitRedis) == 0 {
		t.Errorf("no cache hits: the test did not exercise the cache")
	}
}
