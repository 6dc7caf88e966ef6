package seed

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/assetctl/assetctl/shardedapi"
)

func TestGenerateIsDeterministic(t *testing.T) {
	a, b := Generate(Options{}), Generate(Options{})
	if len(a) != 5000 {
		t.Fatalf("got %d documents, want 3000 products + 2000 users", len(a))
	}
	emails := map[string]bool{}
	for i := range a {
		if a[i].ID != b[i].ID || !bytes.Equal(a[i].Body, b[i].Body) {
			t.Fatalf("document %d differs between runs: %s vs %s", i, a[i].Body, b[i].Body)
		}
		if a[i].Collection == Users {
			var u User
			if err := json.Unmarshal(a[i].Body, &u); err != nil {
				t.Fatal(err)
			}
			if emails[u.Email] {
				t.Fatalf("email %q generated twice, want unique emails", u.Email)
			}
			emails[u.Email] = true
		}
	}
	if a[0].ID != "p00001" || a[2999].ID != "p03000" || a[3000].ID != "u00001" {
		t.Errorf("got IDs %s %s %s, want p00001 p03000 u00001", a[0].ID, a[2999].ID, a[3000].ID)
	}
}

// memStore is a fake document store (an in-memory map) for the
// idempotency rule alone; the real store is exercised by the serve tests.
type memStore struct {
	mu   sync.Mutex
	docs map[string]json.RawMessage
}

func (m *memStore) Put(_ context.Context, col, id string, body json.RawMessage, cond shardedapi.Precondition) (shardedapi.Document, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.docs[col+"/"+id]; ok && cond.IfAbsent {
		return shardedapi.Document{}, false, shardedapi.ErrPreconditionFailed
	}
	m.docs[col+"/"+id] = body
	return shardedapi.Document{Collection: col, ID: id, Body: body}, true, nil
}

func TestLoadIsIdempotent(t *testing.T) {
	s := &memStore{docs: map[string]json.RawMessage{}}
	o := Options{Products: 50, Users: 20}
	r, err := Load(context.Background(), s, o)
	if err != nil || r.Created != 70 || r.Present != 0 {
		t.Fatalf("first load: got %+v %v, want 70 created", r, err)
	}
	s.docs["products/p00001"] = json.RawMessage(`{"name":"edited"}`)
	r, err = Load(context.Background(), s, o)
	if err != nil || r.Created != 0 || r.Present != 70 {
		t.Fatalf("second load: got %+v %v, want 70 present", r, err)
	}
	if string(s.docs["products/p00001"]) != `{"name":"edited"}` {
		t.Errorf("got %s, want the edit kept", s.docs["products/p00001"])
	}
}
