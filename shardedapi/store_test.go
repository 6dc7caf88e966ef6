package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStoreCreateReadUpdateDelete(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{})
	ctx := context.Background()
	s := tc.Store

	u, err := s.CreateUser(ctx, NewUser{Email: "Ada@Example.com", Name: "Ada"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if u.Email != "ada@example.com" {
		t.Errorf("email: got %q, want it lower-cased to %q", u.Email, "ada@example.com")
	}
	got, err := s.User(ctx, u.ID)
	if err != nil {
		t.Fatalf("User(%d): %v", u.ID, err)
	}
	if got.Name != "Ada" || got.ID != u.ID {
		t.Errorf("User: got %+v, want %+v", got, u)
	}
	byEmail, err := s.UserByEmail(ctx, "ADA@example.com")
	if err != nil || byEmail.ID != u.ID {
		t.Errorf("UserByEmail: got %d, %v, want %d", byEmail.ID, err, u.ID)
	}

	name, email := "Ada L.", "ada@lovelace.org"
	if _, err := s.UpdateUser(ctx, u.ID, UserChange{Name: &name, Email: &email}); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	got, err = s.User(ctx, u.ID)
	if err != nil || got.Name != name || got.Email != email {
		t.Errorf("after update: got %+v, %v, want name %q email %q", got, err, name, email)
	}
	// The old email is free again; the new one is taken.
	if _, err := s.UserByEmail(ctx, "ada@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old email lookup: got %v, want ErrNotFound", err)
	}
	other, err := s.CreateUser(ctx, NewUser{Email: "ada@example.com", Name: "Another Ada"})
	if err != nil {
		t.Errorf("reuse of a released email: got %v, want success", err)
	}
	if _, err := s.CreateUser(ctx, NewUser{Email: email, Name: "Copycat"}); !errors.Is(err, ErrTaken) {
		t.Errorf("taken email: got %v, want ErrTaken", err)
	}
	if _, err := s.UpdateUser(ctx, other.ID, UserChange{Email: &email}); !errors.Is(err, ErrTaken) {
		t.Errorf("update to a taken email: got %v, want ErrTaken", err)
	}

	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.User(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("User after delete: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteUser(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: got %v, want ErrNotFound", err)
	}
	if _, err := s.CreateUser(ctx, NewUser{Email: email, Name: "New owner"}); err != nil {
		t.Errorf("email of a deleted user: got %v, want it free", err)
	}
}

// Many concurrent signups for the same emails, spread over shards (the
// email picks the shard, but case variants and different emails all race
// on the catalog): exactly one wins per email, across all shards.
func TestConcurrentSignupsClaimEachEmailOnce(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{})
	ctx := context.Background()
	const emails, racers = 12, 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins = map[string]int{}
		errs []error
	)
	for e := range emails {
		for r := range racers {
			wg.Go(func() {
				email := fmt.Sprintf("user%d@example.com", e)
				if r%2 == 1 {
					email = strings.ToUpper(email)
				}
				_, err := tc.Store.CreateUser(ctx, NewUser{Email: email, Name: fmt.Sprintf("racer %d", r)})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins[strings.ToLower(email)]++
				case !errors.Is(err, ErrTaken):
					errs = append(errs, err)
				}
			})
		}
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("signup: got %v, want success or ErrTaken", err)
	}
	for e := range emails {
		email := fmt.Sprintf("user%d@example.com", e)
		if wins[email] != 1 {
			t.Errorf("winners for %s: got %d, want 1", email, wins[email])
		}
	}
	// Count on the databases themselves: one row per email over all shards.
	rows := map[string]int{}
	for _, sh := range tc.Cluster.Shards() {
		r, err := sh.Pool().Query(ctx, `SELECT email, count(*) FROM users GROUP BY email`)
		if err != nil {
			t.Fatalf("count users on %s: %v", sh.Name(), err)
		}
		for r.Next() {
			var email string
			var n int
			if err := r.Scan(&email, &n); err != nil {
				t.Fatal(err)
			}
			rows[email] += n
		}
		r.Close()
	}
	for e := range emails {
		email := fmt.Sprintf("user%d@example.com", e)
		if rows[email] != 1 {
			t.Errorf("rows with %s on all shards: got %d, want 1", email, rows[email])
		}
	}
	shardsUsed := 0
	for _, sh := range tc.Cluster.Shards() {
		var n int
		if err := sh.Pool().QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			shardsUsed++
		}
	}
	if shardsUsed < 2 {
		t.Errorf("shards holding users: got %d, want the emails spread over at least 2", shardsUsed)
	}
}

// A claim left behind by a writer that crashed (or released the email
// without releasing the claim) is verified against its owner row and
// taken over; a claim whose owner really holds the email is not.
func TestStaleClaimIsTakenOver(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{})
	ctx := context.Background()
	ghost, _ := MakeID(time.Now(), 3, 7) // no such row anywhere
	for _, committed := range []bool{true, false} {
		email := fmt.Sprintf("stale-%v@example.com", committed)
		if _, err := tc.Cluster.Catalog().Exec(ctx, `INSERT INTO unique_claims (namespace, value, owner, committed, claimed_at)
			VALUES ($1, $2, $3, $4, now() - interval '1 hour')`, emailNamespace, email, int64(ghost), committed); err != nil {
			t.Fatal(err)
		}
		u, err := tc.Store.CreateUser(ctx, NewUser{Email: email})
		if err != nil {
			t.Fatalf("committed=%v: signup over a stale claim: got %v, want success", committed, err)
		}
		owner, err := tc.Cluster.ClaimOwner(ctx, emailNamespace, email)
		if err != nil || owner != u.ID {
			t.Errorf("committed=%v: claim owner: got %d, %v, want %d", committed, owner, err, u.ID)
		}
	}
	// A fresh pending claim (a writer mid-transaction) is respected.
	if _, err := tc.Cluster.Catalog().Exec(ctx, `INSERT INTO unique_claims (namespace, value, owner) VALUES ($1, 'busy@example.com', $2)`,
		emailNamespace, int64(ghost)); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Store.CreateUser(ctx, NewUser{Email: "busy@example.com"}); !errors.Is(err, ErrTaken) {
		t.Errorf("signup over a fresh pending claim: got %v, want ErrTaken", err)
	}
}

func TestStoreRejectsBadInput(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Layout: Layout{Buckets: 64}})
	ctx := context.Background()
	for _, c := range []struct {
		name string
		nu   NewUser
		want error
	}{
		{"empty email", NewUser{Email: ""}, ErrInvalidValue},
		{"no at", NewUser{Email: "nobody"}, ErrInvalidValue},
		{"oversized email", NewUser{Email: strings.Repeat("a", 300) + "@x.org"}, ErrInvalidValue},
		{"oversized name", NewUser{Email: "a@x.org", Name: strings.Repeat("n", MaxNameLen+1)}, ErrInvalidValue},
		{"bad utf-8 name", NewUser{Email: "a@x.org", Name: "\xff\xfe"}, ErrInvalidValue},
		{"unknown region", NewUser{Region: "mars", Email: "a@x.org"}, ErrInvalidKey},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := tc.Store.CreateUser(ctx, c.nu); !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
	// An ID whose bucket is outside this 64-bucket dataset.
	bad, _ := MakeID(time.Now(), 100, 0)
	if _, err := tc.Store.User(ctx, bad); !errors.Is(err, ErrInvalidID) {
		t.Errorf("User with an out-of-layout bucket: got %v, want ErrInvalidID", err)
	}
	if _, err := tc.Store.NewestUsers(ctx, 0, GatherOptions{}); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("NewestUsers(0): got %v, want ErrInvalidValue", err)
	}
}
