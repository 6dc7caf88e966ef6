package shardedapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRebalanceFourToFiveUnderLoad executes a rebalance from 4 to 5
// shards with parallel moves while writers insert and update users and
// documents through another process's Cluster: every acknowledged insert
// exists exactly once, no acknowledged update is lost, no caller gets an
// error, about 1/5 of the buckets move and no slot or publication is left.
func TestRebalanceFourToFiveUnderLoad(t *testing.T) {
	t.Parallel()
	const buckets = 128
	mc := newMoveCluster(t, 5, Layout{Buckets: buckets, Regions: []Region{{Buckets: buckets, Shards: []string{"s0", "s1", "s2", "s3"}}}})
	ctx := context.Background()
	if err := mc.c.AddShard(ctx, "s4", ""); err != nil {
		t.Fatal(err)
	}
	plan, err := mc.c.PlanRebalance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 128 / 5 = 25.6: the new shard takes 25 or 26 buckets.
	if len(plan) < 25 || len(plan) > 26 {
		t.Fatalf("4 → 5 shards: %d moves planned, want 25 or 26 (1/5 of %d)", len(plan), buckets)
	}

	// A parallelism the source cannot hold is refused before anything moves.
	drainS0 := map[int]string{}
	s0 := mc.c.Shard("s0")
	for b := range mc.c.Buckets() {
		if sh, _ := mc.c.ShardOfBucket(b); sh == s0 {
			drainS0[b] = "s4"
		}
	}
	version := mc.c.MapVersion()
	if res, err := mc.c.RunMoves(ctx, drainS0, RunMovesOptions{Parallel: len(drainS0)}); !errors.Is(err, ErrTooParallel) || res != nil {
		t.Fatalf("RunMoves with %d parallel moves off one source (20 slots): got %v, want ErrTooParallel and no results", len(drainS0), err)
	}
	if mc.c.MapVersion() != version {
		t.Fatalf("a refused RunMoves changed the map version %d → %d", version, mc.c.MapVersion())
	}

	var (
		stop     atomic.Bool
		mu       sync.Mutex
		users    = map[ID]string{}  // acknowledged users → last acknowledged name
		docs     = map[string]int{} // acknowledged document ids → last acknowledged value
		counters = map[string]int64{}
		failures = make(chan error, 100)
		wg       sync.WaitGroup
	)
	wc := mc.open(t) // the writers' process: its map goes stale until the fence refreshes it
	store := NewStore(wc, StoreOptions{})
	ds, err := NewDocumentStore(wc, DocumentStoreOptions{Collections: []CollectionConfig{{Name: "docs"}, {Name: "counters"}}})
	if err != nil {
		t.Fatal(err)
	}
	fail := func(err error) {
		select {
		case failures <- err:
		default:
		}
	}
	for g := range 4 {
		counter := fmt.Sprintf("c%d", g)
		if _, _, err := ds.Put(ctx, "counters", counter, json.RawMessage(`{"n":0}`), Precondition{}); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			var mine []ID
			var incs int64
			defer func() {
				mu.Lock()
				counters[counter] = incs
				mu.Unlock()
			}()
			for i := 0; i < 100_000 && !stop.Load(); i++ {
				u, err := store.CreateUser(ctx, NewUser{Email: fmt.Sprintf("w%d-%d@example.com", g, i), Name: "v0"})
				if err != nil {
					fail(fmt.Errorf("create user: %w", err))
					return
				}
				mu.Lock()
				users[u.ID] = "v0"
				mu.Unlock()
				mine = append(mine, u.ID)
				// Update an earlier user of this writer (a blind write).
				id := mine[(i*7)%len(mine)]
				name := fmt.Sprintf("v%d", i+1)
				if _, err := store.UpdateUser(ctx, id, UserChange{Name: &name}); err != nil {
					fail(fmt.Errorf("update user %d: %w", int64(id), err))
					return
				}
				mu.Lock()
				users[id] = name
				mu.Unlock()
				docID := fmt.Sprintf("w%d-%d", g, i)
				if _, _, err := ds.Put(ctx, "docs", docID, json.RawMessage(fmt.Sprintf(`{"v":%d}`, i)), Precondition{}); err != nil {
					fail(fmt.Errorf("put document %s: %w", docID, err))
					return
				}
				mu.Lock()
				docs[docID] = i
				mu.Unlock()
				// A read-modify-write increment, conditional on the revision.
				d, err := ds.Get(ctx, "counters", counter)
				if err != nil {
					fail(fmt.Errorf("get counter: %w", err))
					return
				}
				var v struct{ N int64 }
				_ = json.Unmarshal(d.Body, &v)
				if _, _, err := ds.Put(ctx, "counters", counter, json.RawMessage(fmt.Sprintf(`{"n":%d}`, v.N+1)), Precondition{IfRev: d.Rev}); err != nil {
					// Only this writer updates its counter: a failed
					// precondition would mean a lost write too.
					fail(fmt.Errorf("increment %s: %w", counter, err))
					return
				}
				incs++
			}
		})
	}
	// Let some rows build up so the copies have work to do.
	for {
		mu.Lock()
		n := len(users)
		mu.Unlock()
		if n >= 200 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var events atomic.Int64
	start := time.Now()
	results, err := mc.c.RunMoves(ctx, plan, RunMovesOptions{Parallel: 3, Move: MoveOptions{Grace: -1, Progress: func(MoveEvent) { events.Add(1) }}})
	elapsed := time.Since(start)
	// Keep writing a little on the new layout, then stop.
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(failures)
	if err != nil {
		t.Fatalf("RunMoves: %v", err)
	}
	for err := range failures {
		t.Errorf("a caller got an error during the rebalance: %v", err)
	}
	if len(results) != len(plan) {
		t.Errorf("RunMoves: %d results for %d moves", len(results), len(plan))
	}
	for _, r := range results {
		if r.Err != nil || r.Move.State != MoveDone {
			t.Errorf("bucket %d → %s: state %s, error %v", r.Bucket, r.Target, r.Move.State, r.Err)
		}
	}
	if err := mc.c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	perShard := map[string]int{}
	for b := range mc.c.Buckets() {
		sh, _ := mc.c.ShardOfBucket(b)
		perShard[sh.Name()]++
		if to, ok := plan[b]; ok && sh.Name() != to {
			t.Errorf("bucket %d: owner %s after the rebalance, want %s", b, sh.Name(), to)
		}
	}
	for _, s := range []string{"s0", "s1", "s2", "s3", "s4"} {
		if perShard[s] < buckets/5 || perShard[s] > buckets/5+1 {
			t.Errorf("shard %s owns %d buckets after the rebalance, want %d or %d", s, perShard[s], buckets/5, buckets/5+1)
		}
	}

	// Every row, on every shard: each acknowledged one exactly once, on
	// its bucket's owner, with its last acknowledged value.
	gotUsers := map[ID][]string{}
	gotDocs := map[string][]string{}
	for _, sh := range mc.c.Shards() {
		rows, err := sh.Pool().Query(ctx, `SELECT id, name, ((id >> 10) & 4095)::int FROM users`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			var name string
			var b int
			if err := rows.Scan(&id, &name, &b); err != nil {
				t.Fatal(err)
			}
			if owner, _ := mc.c.ShardOfBucket(b); owner != sh {
				t.Errorf("user %d of bucket %d is on %s, whose owner is %s", id, b, sh.Name(), owner.Name())
			}
			gotUsers[ID(id)] = append(gotUsers[ID(id)], name)
		}
		rows.Close()
		rows, err = sh.Pool().Query(ctx, `SELECT collection || '/' || id, body::text FROM documents`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var key, body string
			if err := rows.Scan(&key, &body); err != nil {
				t.Fatal(err)
			}
			gotDocs[key] = append(gotDocs[key], body)
		}
		rows.Close()
	}
	for id, name := range users {
		if got := gotUsers[id]; len(got) != 1 || got[0] != name {
			t.Errorf("user %d: rows with names %v, want exactly one named %q", int64(id), got, name)
		}
	}
	if len(gotUsers) != len(users) {
		t.Errorf("users on the shards: %d, want the %d acknowledged", len(gotUsers), len(users))
	}
	for id, v := range docs {
		got := gotDocs["docs/"+id]
		var body struct{ V int }
		if len(got) == 1 {
			_ = json.Unmarshal([]byte(got[0]), &body)
		}
		if len(got) != 1 || body.V != v {
			t.Errorf("document docs/%s: rows %v, want exactly one with v=%d", id, got, v)
		}
	}
	var incs int64
	for c, n := range counters {
		incs += n
		got := gotDocs["counters/"+c]
		var body struct{ N int64 }
		if len(got) == 1 {
			_ = json.Unmarshal([]byte(got[0]), &body)
		}
		if len(got) != 1 || body.N != n {
			t.Errorf("counter %s: rows %v, want exactly one with n=%d (the acknowledged increments)", c, got, n)
		}
	}
	if len(gotDocs) != len(docs)+len(counters) {
		t.Errorf("documents on the shards: %d, want the %d acknowledged", len(gotDocs), len(docs)+len(counters))
	}
	if l := mc.leftovers(t); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
	t.Logf("4 → 5 shards: %d of %d buckets moved, 3 at a time, in %s (%d progress events) under load: %d users, %d documents, %d increments",
		len(plan), buckets, elapsed.Round(time.Millisecond), events.Load(), len(users), len(docs), incs)
}

// TestRunMovesFailureDoesNotStopOthers: one of several parallel moves
// fails; the others finish, the failure is reported and rolled back
// (nothing left behind), and a rerun of the failed one succeeds.
func TestRunMovesFailureDoesNotStopOthers(t *testing.T) {
	t.Parallel()
	mc := newMoveCluster(t, 2, Layout{Buckets: 64})
	ctx := context.Background()
	s0 := mc.c.Shard("s0")
	moves := map[int]string{}
	ids := map[int][]ID{}
	for b := range mc.c.Buckets() {
		if sh, _ := mc.c.ShardOfBucket(b); sh == s0 && len(moves) < 4 {
			moves[b] = "s1"
			ids[b] = seedBucket(t, mc.c, b, 5, fmt.Sprintf("r%d-", b))
		}
	}
	boom := errors.New("injected failure")
	var failed atomic.Bool
	results, err := mc.c.RunMoves(ctx, moves, RunMovesOptions{Parallel: 2, Move: MoveOptions{Grace: -1, hook: func(s string) error {
		if s == MoveCopying && failed.CompareAndSwap(false, true) {
			return boom
		}
		return nil
	}}})
	if !errors.Is(err, boom) {
		t.Fatalf("RunMoves with one failing move: got %v, want the injected failure", err)
	}
	var bad []int
	for _, r := range results {
		switch {
		case r.Err != nil:
			bad = append(bad, r.Bucket)
		case r.Move.State != MoveDone:
			t.Errorf("bucket %d: state %s, want done", r.Bucket, r.Move.State)
		default:
			checkMoved(t, mc, r.Bucket, "s0", "s1", ids[r.Bucket])
		}
	}
	if len(results) != len(moves) || len(bad) != 1 {
		t.Fatalf("results %+v: want %d, exactly one failed", results, len(moves))
	}
	if sh, _ := mc.c.ShardOfBucket(bad[0]); sh != s0 {
		t.Errorf("failed bucket %d: owner %s, want the source s0", bad[0], sh.Name())
	}
	if l := mc.leftovers(t); len(l) > 0 {
		t.Errorf("left behind after a failed parallel move: %v", l)
	}
	if _, err := mc.c.RunMoves(ctx, map[int]string{bad[0]: "s1"}, RunMovesOptions{Parallel: 2, Move: MoveOptions{Grace: -1}}); err != nil {
		t.Fatalf("rerun of the failed move: %v", err)
	}
	checkMoved(t, mc, bad[0], "s0", "s1", ids[bad[0]])
}
