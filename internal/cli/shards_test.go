package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/shardedapi"
)

// TestShardsCommands drives add, status, move, rebalance --plan and drain
// --plan against a dataset on a private wal_level=logical cluster.
func TestShardsCommands(t *testing.T) {
	ctx := context.Background()
	pg := testsvc.StartPostgresWith(t, testsvc.PostgresOptions{Logical: true})
	catalog := testsvc.MachinePostgres(t).CreateDatabase(t, "cli_catalog")
	s0, s1, s2 := pg.CreateDatabase(t, "cli_s0"), pg.CreateDatabase(t, "cli_s1"), pg.CreateDatabase(t, "cli_s2")
	opts := shardedapi.Options{CatalogDSN: catalog, Shards: []shardedapi.ShardConfig{{Name: "s0", DSN: s0}, {Name: "s1", DSN: s1}}}
	if err := shardedapi.Migrate(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if err := shardedapi.Bootstrap(ctx, opts, shardedapi.Layout{Buckets: 16}); err != nil {
		t.Fatal(err)
	}
	c, err := shardedapi.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	store := shardedapi.NewStore(c, shardedapi.StoreOptions{})
	for _, e := range []string{"a@x.org", "b@x.org", "c@x.org", "d@x.org", "e@x.org"} {
		if _, err := store.CreateUser(ctx, shardedapi.NewUser{Email: e}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()

	dataset := []string{"--catalog", catalog, "--shard", "s0=" + s0, "--shard", "s1=" + s1}
	run := func(args ...string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Run(ctx, args, strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("assetctl %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
		}
		return out.String(), errb.String()
	}
	_, stderr := run(append([]string{"shards", "add", "s2", s2}, dataset...)...)
	if !strings.Contains(stderr, "shard s2 added") {
		t.Errorf("add: stderr %q, want it to confirm the shard", stderr)
	}
	dataset = append(dataset, "--shard", "s2="+s2)

	plan, _ := run(append([]string{"shards", "rebalance", "--plan"}, dataset...)...)
	if !strings.Contains(plan, "5 move(s)") {
		t.Errorf("rebalance --plan of 16 buckets onto a third shard: got\n%s\nwant 5 moves", plan)
	}
	_, stderr = run(append([]string{"shards", "move", "--bucket", "2,3", "--to", "s2", "--grace", "0"}, dataset...)...)
	if !strings.Contains(stderr, "bucket 2 done") || !strings.Contains(stderr, "bucket 3 done") || !strings.Contains(stderr, "writes paused") {
		t.Errorf("move: stderr\n%s\nwant progress lines and both buckets done", stderr)
	}
	out, _ := run(append([]string{"shards", "status", "--json"}, dataset...)...)
	var st statusReport
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.MapVersion != 3 || len(st.Moves) != 2 || st.Moves[0].State != shardedapi.MoveDone {
		t.Errorf("status: map version %d, moves %+v; want version 3 and two done moves", st.MapVersion, st.Moves)
	}
	var rows int64
	for _, s := range st.Shards {
		rows += s.Rows
		if s.Shard == "s2" && s.Buckets != 2 {
			t.Errorf("status: s2 owns %d buckets, want 2", s.Buckets)
		}
	}
	if rows != 5 {
		t.Errorf("status: %d rows in all, want the 5 users", rows)
	}
	if plan, _ := run(append([]string{"shards", "rebalance", "--plan", "--by", "rows"}, dataset...)...); !strings.Contains(plan, "move(s)") {
		t.Errorf("rebalance --plan --by rows: got\n%s", plan)
	}
	plan, _ = run(append([]string{"shards", "drain", "s2", "--plan"}, dataset...)...)
	if !strings.Contains(plan, "2 move(s)") {
		t.Errorf("drain --plan: got\n%s\nwant the 2 buckets of s2", plan)
	}
	if !st.ByTraffic || len(st.Hottest) == 0 || st.Hottest[0].Writes == 0 {
		t.Errorf("status: by traffic %v, hottest %+v; want the 5 creates flushed by the seeding process", st.ByTraffic, st.Hottest)
	}
	page := t.TempDir() + "/status.html"
	text, _ := run(append([]string{"shards", "status", "--heatmap", "--html", page}, dataset...)...)
	if !strings.Contains(text, "map version 3") || !strings.Contains(text, "heat map of 16 buckets") {
		t.Errorf("status: got\n%s", text)
	}
	html, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(html), `class="grid"`) || strings.Count(string(html), "title=\"bucket ") != 16 {
		t.Errorf("status --html: %v, want a page with a grid of 16 buckets", err)
	}

	// Parallel moves: a failed move (an unknown bucket) does not stop the
	// others; each failure is reported and the command fails.
	var out2, errb bytes.Buffer
	code := Run(ctx, append([]string{"shards", "move", "--bucket", "4,999,5", "--to", "s2", "--grace", "0", "--max-parallel", "2"}, dataset...), strings.NewReader(""), &out2, &errb)
	if code == 0 || !strings.Contains(errb.String(), "bucket 999 FAILED") || !strings.Contains(errb.String(), "bucket 4 done") ||
		!strings.Contains(errb.String(), "bucket 5 done") || !strings.Contains(errb.String(), "1 of 3 move(s) failed") {
		t.Errorf("move --max-parallel 2 with an unknown bucket: exit %d, stderr\n%s\nwant buckets 4 and 5 done, 999 reported, a non-zero exit", code, errb.String())
	}
	_, stderr = run(append([]string{"shards", "drain", "s2", "--grace", "0", "--max-parallel", "3"}, dataset...)...)
	for _, b := range []string{"2", "3", "4", "5"} {
		if !strings.Contains(stderr, "bucket "+b+" done") {
			t.Errorf("drain --max-parallel 3: stderr\n%s\nwant bucket %s done", stderr, b)
		}
	}
	out, _ = run(append([]string{"shards", "status", "--json"}, dataset...)...)
	st = statusReport{}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	for _, s := range st.Shards {
		if s.Shard == "s2" && s.Buckets != 0 {
			t.Errorf("after drain s2 --max-parallel 3: s2 owns %d buckets, want 0", s.Buckets)
		}
	}
}
