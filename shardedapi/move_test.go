package shardedapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// moveCluster is a dataset whose shards live in one private PostgreSQL
// cluster with wal_level=logical (the catalog stays on the machine's
// server), opened by the mover's own Cluster.
type moveCluster struct {
	opts Options
	c    *Cluster
	pg   *testsvc.Postgres
}

func newMoveCluster(t testing.TB, shards int, layout Layout) *moveCluster {
	t.Helper()
	ctx := context.Background()
	pg := testsvc.StartPostgresWith(t, testsvc.PostgresOptions{Logical: true})
	mc := &moveCluster{pg: pg, opts: Options{
		CatalogDSN:      testsvc.MachinePostgres(t).CreateDatabase(t, "shardedapi_catalog"),
		RefreshInterval: -1,
	}}
	for i := range shards {
		name := fmt.Sprintf("s%d", i)
		mc.opts.Shards = append(mc.opts.Shards, ShardConfig{Name: name, DSN: pg.CreateDatabase(t, "shardedapi_"+name)})
	}
	if err := Migrate(ctx, mc.opts); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if err := Bootstrap(ctx, mc.opts, layout); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	mc.c = mc.open(t)
	return mc
}

// open opens another process's view of the dataset (refresh off: its map
// goes stale unless a fence refusal refreshes it).
func (mc *moveCluster) open(t testing.TB) *Cluster {
	t.Helper()
	c, err := Open(context.Background(), mc.opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// otherShard is a shard that does not own bucket.
func (mc *moveCluster) otherShard(t testing.TB, bucket int) string {
	t.Helper()
	sh, _ := mc.c.ShardOfBucket(bucket)
	for _, s := range mc.c.Shards() {
		if s != sh {
			return s.Name()
		}
	}
	t.Fatal("no other shard")
	return ""
}

// emailsInBucket returns n emails whose user rows go to bucket.
func emailsInBucket(c *Cluster, bucket, n int, tag string) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		e := fmt.Sprintf("%s%d@example.com", tag, i)
		if loc, _ := c.Locate(Key{ID: e}); loc.Bucket == bucket {
			out = append(out, e)
		}
	}
	return out
}

// docIDInBucket returns a document ID of collection that goes to bucket.
func docIDInBucket(c *Cluster, collection string, bucket int, tag string) string {
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s%d", tag, i)
		if loc, _ := c.Locate(Key{ID: collection + "/" + id}); loc.Bucket == bucket {
			return id
		}
	}
}

// leftovers lists the replication slots and publications on every shard.
func (mc *moveCluster) leftovers(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, s := range mc.c.Shards() {
		rows, err := s.Pool().Query(context.Background(), `SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE database = current_database()
			UNION ALL SELECT 'publication ' || pubname FROM pg_publication`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			out = append(out, s.Name()+": "+n)
		}
		rows.Close()
	}
	return out
}

func countRows(t *testing.T, sh *Shard, q string, args ...any) int {
	t.Helper()
	var n int
	if err := sh.Pool().QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestMoveUnderWriteLoad moves a bucket while goroutines of two other
// processes (one never refreshing its map on its own) create users and
// increment a counter document in it: every acknowledged create exists
// exactly once, the counter lost no increment, no caller got an error.
func TestMoveUnderWriteLoad(t *testing.T) {
	t.Parallel()
	mc := newMoveCluster(t, 2, Layout{})
	ctx := context.Background()
	const bucket = 7
	to := mc.otherShard(t, bucket)
	from, _ := mc.c.ShardOfBucket(bucket)

	var (
		stop     atomic.Bool
		created  sync.Map // email → ID
		incs     atomic.Int64
		failures = make(chan error, 100)
		wg       sync.WaitGroup
	)
	counterID := docIDInBucket(mc.c, "counters", bucket, "c")
	for p := range 2 {
		pc := mc.open(t)
		store := NewStore(pc, StoreOptions{})
		docs, err := NewDocumentStore(pc, DocumentStoreOptions{Collections: []CollectionConfig{{Name: "counters"}}})
		if err != nil {
			t.Fatal(err)
		}
		if p == 0 {
			if _, _, err := docs.Put(ctx, "counters", counterID, json.RawMessage(`{"n":0}`), Precondition{}); err != nil {
				t.Fatal(err)
			}
		}
		emails := emailsInBucket(pc, bucket, 4000, fmt.Sprintf("p%d-", p))
		for g := range 3 {
			wg.Go(func() {
				for i := g; i < len(emails) && !stop.Load(); i += 3 {
					u, err := store.CreateUser(ctx, NewUser{Email: emails[i], Name: "n"})
					if err != nil {
						failures <- fmt.Errorf("create: %w", err)
						return
					}
					created.Store(u.Email, u.ID)
					// A read-modify-write increment, conditional on the revision.
					for {
						d, err := docs.Get(ctx, "counters", counterID)
						if err != nil {
							failures <- fmt.Errorf("get counter: %w", err)
							return
						}
						var v struct{ N int64 }
						_ = json.Unmarshal(d.Body, &v)
						_, _, err = docs.Put(ctx, "counters", counterID, json.RawMessage(fmt.Sprintf(`{"n":%d}`, v.N+1)), Precondition{IfRev: d.Rev})
						if errors.Is(err, ErrPreconditionFailed) {
							continue
						}
						if err != nil {
							failures <- fmt.Errorf("increment: %w", err)
							return
						}
						incs.Add(1)
						break
					}
				}
			})
		}
	}
	// Let the load build some rows first, so the copy has work too.
	for countRows(t, from, `SELECT count(*) FROM users`) < 100 {
		time.Sleep(10 * time.Millisecond)
	}
	var pauses []time.Duration
	m, err := mc.c.MoveBucket(ctx, bucket, to, MoveOptions{Grace: -1, Progress: func(e MoveEvent) {
		if e.Pause > 0 {
			pauses = append(pauses, e.Pause)
		}
	}})
	if err != nil {
		t.Fatalf("MoveBucket: %v", err)
	}
	// Keep writing a little on the new owner, then stop.
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Errorf("a caller got an error during the move: %v", err)
	}
	if m.State != MoveDone {
		t.Errorf("move state: got %s, want %s", m.State, MoveDone)
	}
	if sh, _ := mc.c.ShardOfBucket(bucket); sh.Name() != to {
		t.Errorf("owner after the move: got %s, want %s", sh.Name(), to)
	}
	dst := mc.c.Shard(to)
	n := 0
	created.Range(func(k, v any) bool {
		n++
		if c := countRows(t, dst, `SELECT count(*) FROM users WHERE id = $1`, int64(v.(ID))); c != 1 {
			t.Errorf("user %s: %d rows on the new owner, want exactly 1", k, c)
		}
		return true
	})
	if got := countRows(t, dst, `SELECT count(*) FROM users WHERE bucket = $1`, bucket); got != n {
		t.Errorf("users in bucket %d on the new owner: got %d, want the %d acknowledged", bucket, got, n)
	}
	if got := countRows(t, from, `SELECT count(*) FROM users WHERE bucket = $1`, bucket); got != 0 {
		t.Errorf("users left on the old owner after cleanup: got %d, want 0", got)
	}
	var body []byte
	if err := dst.Pool().QueryRow(ctx, `SELECT body FROM documents WHERE collection = 'counters' AND id = $1`, counterID).Scan(&body); err != nil {
		t.Fatal(err)
	}
	var v struct{ N int64 }
	_ = json.Unmarshal(body, &v)
	if v.N != incs.Load() {
		t.Errorf("counter: got %d, want the %d acknowledged increments", v.N, incs.Load())
	}
	if l := mc.leftovers(t); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
	t.Logf("moved bucket %d with %d users and %d increments under load; cutover pauses %v", bucket, n, incs.Load(), pauses)
}

// seedBucket creates n users in bucket through a store of c.
func seedBucket(t *testing.T, c *Cluster, bucket, n int, tag string) []ID {
	t.Helper()
	s := NewStore(c, StoreOptions{})
	var ids []ID
	for _, e := range emailsInBucket(c, bucket, n, tag) {
		u, err := s.CreateUser(context.Background(), NewUser{Email: e, Name: "seed"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	return ids
}

// checkMoved checks the bucket is on to with exactly ids, and nothing
// was left behind.
func checkMoved(t *testing.T, mc *moveCluster, bucket int, from, to string, ids []ID) {
	t.Helper()
	if err := mc.c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sh, _ := mc.c.ShardOfBucket(bucket); sh.Name() != to {
		t.Errorf("owner: got %s, want %s", sh.Name(), to)
	}
	if got := countRows(t, mc.c.Shard(to), `SELECT count(*) FROM users WHERE bucket = $1`, bucket); got != len(ids) {
		t.Errorf("rows on %s: got %d, want %d", to, got, len(ids))
	}
	if got := countRows(t, mc.c.Shard(from), `SELECT count(*) FROM users WHERE bucket = $1`, bucket); got != 0 {
		t.Errorf("rows left on %s: got %d, want 0", from, got)
	}
	if l := mc.leftovers(t); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}

// TestMoveResumesAfterAbandonAtEachState abandons the mover at every
// state (as a cancelled process would), writes a row meanwhile, reruns:
// the move finishes with every row exactly once and nothing left behind.
func TestMoveResumesAfterAbandonAtEachState(t *testing.T) {
	t.Parallel()
	mc := newMoveCluster(t, 2, Layout{})
	states := []string{MovePlanned, MoveCopying, MoveCatchingUp, MoveCutover, "fenced", "cutover-committed", MoveCleanup}
	for i, state := range states {
		bucket := 10 + i
		from, _ := mc.c.ShardOfBucket(bucket)
		to := mc.otherShard(t, bucket)
		ids := seedBucket(t, mc.c, bucket, 20, fmt.Sprintf("a%d-", i))
		ctx, cancel := context.WithCancel(context.Background())
		_, err := mc.c.MoveBucket(ctx, bucket, to, MoveOptions{Grace: -1, hook: func(s string) error {
			if s == state {
				cancel()
				return context.Canceled
			}
			return nil
		}})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("abandon at %s: got %v, want context.Canceled", state, err)
		}
		// Writes continue while the move is abandoned and rerun (past the
		// point of no return they wait for the rerun's map flip).
		other := mc.open(t)
		more := make(chan []ID)
		go func() { more <- seedBucket(t, other, bucket, 3, fmt.Sprintf("b%d-", i)) }()
		m, err := mc.c.MoveBucket(context.Background(), bucket, to, MoveOptions{Grace: -1})
		ids = append(ids, <-more...)
		if err != nil {
			t.Fatalf("rerun after abandoning at %s: %v", state, err)
		}
		if m.State != MoveDone {
			t.Errorf("rerun after %s: state %s, want done", state, m.State)
		}
		checkMoved(t, mc, bucket, from.Name(), to, ids)
	}
}

// TestMoveFailureBeforeCutoverRollsBack fails the mover before cutover:
// the source stays the owner with its rows, the target's copy, the slot
// and the publication are gone, and the bucket can be moved later.
func TestMoveFailureBeforeCutoverRollsBack(t *testing.T) {
	t.Parallel()
	mc := newMoveCluster(t, 2, Layout{})
	ctx := context.Background()
	for i, state := range []string{MoveCopying, MoveCatchingUp, MoveCutover, "fenced"} {
		bucket := 30 + i
		from, _ := mc.c.ShardOfBucket(bucket)
		to := mc.otherShard(t, bucket)
		ids := seedBucket(t, mc.c, bucket, 10, fmt.Sprintf("f%d-", i))
		boom := errors.New("injected failure")
		_, err := mc.c.MoveBucket(ctx, bucket, to, MoveOptions{Grace: -1, hook: func(s string) error {
			if s == state {
				return boom
			}
			return nil
		}})
		if !errors.Is(err, boom) {
			t.Fatalf("fail at %s: got %v, want the injected failure", state, err)
		}
		if sh, _ := mc.c.ShardOfBucket(bucket); sh != from {
			t.Errorf("fail at %s: owner %s, want the source %s", state, sh.Name(), from.Name())
		}
		if got := countRows(t, mc.c.Shard(to), `SELECT count(*) FROM users WHERE bucket = $1`, bucket); got != 0 {
			t.Errorf("fail at %s: %d rows left on the target, want 0", state, got)
		}
		if l := mc.leftovers(t); len(l) > 0 {
			t.Errorf("fail at %s: left behind %v", state, l)
		}
		// The source still takes writes, and a later move succeeds.
		ids = append(ids, seedBucket(t, mc.c, bucket, 2, fmt.Sprintf("g%d-", i))...)
		if _, err := mc.c.MoveBucket(ctx, bucket, to, MoveOptions{Grace: -1}); err != nil {
			t.Fatalf("move after a rolled-back one: %v", err)
		}
		checkMoved(t, mc, bucket, from.Name(), to, ids)
	}
}

// TestMoveBadInput: each bad request is a clear error and changes nothing.
func TestMoveBadInput(t *testing.T) {
	t.Parallel()
	mc := newMoveCluster(t, 3, Layout{Regions: []Region{{Name: "eu", Buckets: 512, Shards: []string{"s0", "s1"}}, {Name: "us", Buckets: 512, Shards: []string{"s2"}}}})
	ctx := context.Background()
	const bucket = 3 // region eu
	owner, _ := mc.c.ShardOfBucket(bucket)
	other := "s0"
	if owner.Name() == "s0" {
		other = "s1"
	}
	// A target whose schema lags: forget its newest migration.
	lagging := newMoveCluster(t, 2, Layout{})
	lagTo := lagging.otherShard(t, bucket)
	if _, err := lagging.c.Shard(lagTo).Pool().Exec(ctx, `DELETE FROM shardedapi_schema WHERE version_id = (SELECT max(version_id) FROM shardedapi_schema)`); err != nil {
		t.Fatal(err)
	}
	// A source without wal_level=logical: the machine's server.
	plain := newTestCluster(t, testClusterConfig{Shards: 2})
	plainTo := "s0"
	if sh, _ := plain.Cluster.ShardOfBucket(bucket); sh.Name() == "s0" {
		plainTo = "s1"
	}
	var lag *SchemaLagError
	var unknown *UnknownShardError
	cases := []struct {
		name   string
		c      *Cluster
		bucket int
		to     string
		want   func(error) bool
		says   string
	}{
		{"bucket below range", mc.c, -1, other, func(err error) bool { return errors.Is(err, ErrInvalidID) }, "outside"},
		{"bucket above range", mc.c, 4096, other, func(err error) bool { return errors.Is(err, ErrInvalidID) }, "outside"},
		{"unknown shard", mc.c, bucket, "s9", func(err error) bool { return errors.As(err, &unknown) }, "s9"},
		{"current owner", mc.c, bucket, owner.Name(), func(err error) bool { return errors.Is(err, ErrAlreadyOwner) }, owner.Name()},
		{"other region", mc.c, bucket, "s2", func(err error) bool { return err != nil }, "never leave their region"},
		{"target schema lags", lagging.c, bucket, lagTo, func(err error) bool { return errors.As(err, &lag) }, "run shardedapi.Migrate"},
		{"source not logical", plain.Cluster, bucket, plainTo, func(err error) bool { return errors.Is(err, ErrNotLogical) }, "wal_level=logical"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.c.MapVersion()
			_, err := tc.c.MoveBucket(ctx, tc.bucket, tc.to, MoveOptions{})
			if !tc.want(err) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want a typed error saying %q", err, tc.says)
			}
			ms, lerr := tc.c.Moves(ctx, 10)
			if lerr != nil || len(ms) != 0 {
				t.Errorf("moves recorded: %v, %v; want none", ms, lerr)
			}
			if err := tc.c.Refresh(ctx); err != nil || tc.c.MapVersion() != before {
				t.Errorf("map version: got %d (%v), want %d", tc.c.MapVersion(), err, before)
			}
		})
	}
	if l := mc.leftovers(t); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}
