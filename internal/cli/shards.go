package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/assetctl/assetctl/internal/config"
	"github.com/assetctl/assetctl/shardedapi"
)

// shardsFlags are the dataset settings every shards subcommand takes.
type shardsFlags struct {
	catalog string
	shards  []string
	grace   time.Duration
	// parallel is --max-parallel (rebalance, drain and move).
	parallel int
}

func (f *shardsFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.catalog, "catalog", "", "catalog database connection string")
	cmd.Flags().StringArrayVar(&f.shards, "shard", nil, "a shard as NAME=DSN (repeat for each shard)")
	cmd.Flags().DurationVar(&f.grace, "grace", time.Minute, "how long a moved bucket's old rows stay on the source (longer than any process's map refresh)")
}

// registerParallel adds --max-parallel to the commands that move buckets.
func (f *shardsFlags) registerParallel(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.parallel, "max-parallel", 1, "how many bucket moves run at once; each holds a replication slot and a WAL sender on its source, so keep it below the source's max_replication_slots and max_wal_senders (minus other replication)")
}

// options reads the shards: section beneath the flags and builds the
// library options.
func (f *shardsFlags) options(e *env, cmd *cobra.Command) (shardedapi.Options, error) {
	if _, _, _, err := loadSettings(e, cmd, nil, func(file *config.File) any { return &file.Shards }); err != nil {
		return shardedapi.Options{}, err
	}
	if f.catalog == "" {
		return shardedapi.Options{}, errors.New("no catalog: give --catalog or shards.catalog in assetctl.yaml")
	}
	if len(f.shards) == 0 {
		return shardedapi.Options{}, errors.New("no shards: give --shard NAME=DSN (repeatable) or shards.shard in assetctl.yaml")
	}
	opts := shardedapi.Options{CatalogDSN: f.catalog, RefreshInterval: -1, Logger: e.log}
	for _, s := range f.shards {
		name, dsn, ok := strings.Cut(s, "=")
		if !ok || name == "" || dsn == "" {
			return shardedapi.Options{}, fmt.Errorf("--shard %q: want NAME=DSN", s)
		}
		opts.Shards = append(opts.Shards, shardedapi.ShardConfig{Name: name, DSN: dsn})
	}
	return opts, nil
}

func (f *shardsFlags) open(ctx context.Context, e *env, cmd *cobra.Command) (*shardedapi.Cluster, error) {
	opts, err := f.options(e, cmd)
	if err != nil {
		return nil, err
	}
	return shardedapi.Open(ctx, opts)
}

func newShardsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shards",
		Short: "Operate the sharded dataset online: status, add, move, rebalance, drain",
		Long: `shards inspects and reshapes the sharded dataset of shardedapi while traffic
continues. Buckets move online: their rows are copied in a snapshot, the
change stream is applied, and the cutover happens behind a write fence in the
source database. A source shard needs wal_level=logical (see the README's
"Adding a shard").

The dataset comes from --catalog and --shard flags, ASSETCTL_CATALOG and
ASSETCTL_SHARD, or the shards: section of assetctl.yaml.`,
		Example: `  assetctl shards status --catalog postgres://db0/catalog --shard s0=postgres://db1/s0 --shard s1=postgres://db2/s1
  assetctl shards move --bucket 7,8 --to s1
  assetctl shards rebalance --plan`,
	}
	cmd.AddCommand(newShardsStatusCmd(e), newShardsAddCmd(e), newShardsMoveCmd(e), newShardsRebalanceCmd(e), newShardsDrainCmd(e))
	return cmd
}

// shardStatus is a shard's line of `shards status`.
type shardStatus struct {
	Shard   string `json:"shard"`
	Region  string `json:"region"`
	Buckets int    `json:"buckets"`
	Rows    int64  `json:"rows"`
	Bytes   int64  `json:"bytes"`
	Stray   int64  `json:"stray_rows"`
	Reads   int64  `json:"reads"`
	Writes  int64  `json:"writes"`
}

type bucketStatus struct {
	Bucket int    `json:"bucket"`
	Shard  string `json:"shard"`
	Rows   int64  `json:"rows"`
	Reads  int64  `json:"reads"`
	Writes int64  `json:"writes"`
}

// load is what the hotspot ranking and the heat map sort by: traffic when
// any was counted, else rows.
func (b bucketStatus) load(byTraffic bool) int64 {
	if byTraffic {
		return b.Reads + b.Writes
	}
	return b.Rows
}

type moveStatus struct {
	ID     int64  `json:"id"`
	Bucket int    `json:"bucket"`
	From   string `json:"from"`
	To     string `json:"to"`
	State  string `json:"state"`
	Rows   int64  `json:"rows_copied"`
	Lease  string `json:"lease_owner,omitempty"`
	Error  string `json:"error,omitempty"`
}

type statusReport struct {
	MapVersion int64          `json:"map_version"`
	Shards     []shardStatus  `json:"shards"`
	Hottest    []bucketStatus `json:"hottest_buckets"`
	Buckets    []bucketStatus `json:"-"` // every bucket, for the heat map
	ByTraffic  bool           `json:"by_traffic"`
	Skew       float64        `json:"skew"` // largest shard's load / mean
	Moves      []moveStatus   `json:"moves"`
	Partial    bool           `json:"partial"`
}

func newShardsStatusCmd(e *env) *cobra.Command {
	var f shardsFlags
	var asJSON, heat bool
	var htmlPath string
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show the bucket map, rows and bytes per shard, the largest buckets and moves in progress",
		Example: "  assetctl shards status --json\n  assetctl shards status --html shards.html",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := f.open(ctx, e, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			rep, err := c.Hotspots(ctx, shardedapi.HotspotOptions{})
			if err != nil {
				return err
			}
			traffic, err := c.Traffic(ctx)
			if err != nil {
				return err
			}
			st := statusReport{MapVersion: rep.MapVersion, Partial: rep.Partial, ByTraffic: len(traffic) > 0}
			byBucket := map[int]shardedapi.BucketTraffic{}
			for _, t := range traffic {
				byBucket[t.Bucket] = t
			}
			shardIdx := map[string]int{}
			for _, s := range rep.Shards {
				ss := shardStatus{Shard: s.Shard, Region: s.Region, Buckets: s.Buckets, Rows: s.Rows, Stray: s.Stray}
				if sh := c.Shard(s.Shard); sh != nil {
					_ = sh.Pool().QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c WHERE c.relname IN ('users', 'documents') AND c.relkind = 'r'`).Scan(&ss.Bytes)
				}
				shardIdx[s.Shard] = len(st.Shards)
				st.Shards = append(st.Shards, ss)
			}
			for _, b := range rep.Buckets {
				t := byBucket[b.Bucket]
				bs := bucketStatus{Bucket: b.Bucket, Shard: b.Shard, Rows: b.Rows, Reads: t.Reads, Writes: t.Writes}
				st.Buckets = append(st.Buckets, bs)
				if i, ok := shardIdx[b.Shard]; ok {
					st.Shards[i].Reads += t.Reads
					st.Shards[i].Writes += t.Writes
				}
			}
			var total, most int64
			for _, s := range st.Shards {
				l := s.Rows
				if st.ByTraffic {
					l = s.Reads + s.Writes
				}
				total += l
				most = max(most, l)
			}
			if len(st.Shards) > 0 && total > 0 {
				st.Skew = float64(most) / (float64(total) / float64(len(st.Shards)))
			}
			buckets := slices.Clone(st.Buckets)
			slices.SortStableFunc(buckets, func(a, b bucketStatus) int { return int(b.load(st.ByTraffic) - a.load(st.ByTraffic)) })
			for _, b := range buckets[:min(10, len(buckets))] {
				if b.load(st.ByTraffic) > 0 {
					st.Hottest = append(st.Hottest, b)
				}
			}
			moves, err := c.Moves(ctx, 20)
			if err != nil {
				return err
			}
			for _, m := range moves {
				st.Moves = append(st.Moves, moveStatus{ID: m.ID, Bucket: m.Bucket, From: m.Source, To: m.Target, State: m.State, Rows: m.RowsCopied, Lease: m.LeaseOwner, Error: m.Error})
			}
			if htmlPath != "" {
				if err := os.WriteFile(htmlPath, []byte(statusHTML(st)), 0o644); err != nil {
					return fmt.Errorf("write --html: %w", err)
				}
				fmt.Fprintf(e.stderr, "wrote %s\n", htmlPath)
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			what := "rows"
			if st.ByTraffic {
				what = "reads+writes, all processes"
			}
			w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "map version %d, skew %.2f (largest shard's %s / mean)\n\n", st.MapVersion, st.Skew, what)
			fmt.Fprintln(w, "SHARD\tREGION\tBUCKETS\tROWS\tBYTES\tSTRAY\tREADS\tWRITES")
			for _, s := range st.Shards {
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", s.Shard, s.Region, s.Buckets, s.Rows, s.Bytes, s.Stray, s.Reads, s.Writes)
			}
			fmt.Fprintf(w, "\nHOTTEST BUCKETS (%s)\tSHARD\tROWS\tREADS\tWRITES\n", what)
			for _, b := range st.Hottest {
				fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%d\n", b.Bucket, b.Shard, b.Rows, b.Reads, b.Writes)
			}
			fmt.Fprintln(w, "\nMOVE\tBUCKET\tFROM\tTO\tSTATE\tROWS COPIED\tERROR")
			for _, m := range st.Moves {
				fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%d\t%s\n", m.ID, m.Bucket, m.From, m.To, m.State, m.Rows, m.Error)
			}
			if st.Partial {
				fmt.Fprintln(w, "\n(partial: some shards did not answer)")
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if heat || isTerminal(e.stdout) {
				fmt.Fprintf(e.stdout, "\nheat map of %d buckets by %s (one character per bucket, 64 per line; ' ' none … '@' hottest):\n%s", len(st.Buckets), what, heatMap(st))
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&heat, "heatmap", false, "print the bucket heat map even when stdout is not a terminal")
	cmd.Flags().StringVar(&htmlPath, "html", "", "also write the report as a self-contained HTML page to this file")
	return cmd
}

func newShardsAddCmd(e *env) *cobra.Command {
	var f shardsFlags
	var region string
	cmd := &cobra.Command{
		Use:   "add NAME DSN",
		Short: "Migrate a new shard and register it in the catalog (moves nothing)",
		Long: `add migrates the new shard's schema and registers it in the catalog for a
region. It moves no bucket: run "shards rebalance" next. Add NAME=DSN to every
process's shard list (serve's and shards' config) before moving buckets to it.`,
		Example: "  assetctl shards add s2 postgres://app@db3/shard_2 --region eu",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			opts, err := f.options(e, cmd)
			if err != nil {
				return err
			}
			name, dsn := args[0], args[1]
			opts.Shards = slices.DeleteFunc(opts.Shards, func(s shardedapi.ShardConfig) bool { return s.Name == name })
			opts.Shards = append(opts.Shards, shardedapi.ShardConfig{Name: name, DSN: dsn})
			fmt.Fprintf(e.stderr, "migrating shard %s\n", name)
			if err := shardedapi.Migrate(ctx, opts); err != nil {
				return err
			}
			c, err := shardedapi.Open(ctx, opts)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.AddShard(ctx, name, region); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "shard %s added to region %q with no buckets; next: assetctl shards rebalance --plan\n", name, region)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&region, "region", "", "the data-residency region the shard serves")
	return cmd
}

func parseBuckets(s string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("--bucket %q: want bucket numbers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// runMoves makes the moves, up to parallel at once, printing progress
// lines to stderr. A failed move does not stop the others; each failure is
// reported and the command fails at the end.
func runMoves(ctx context.Context, e *env, c *shardedapi.Cluster, moves map[int]string, grace time.Duration, parallel int) error {
	if grace == 0 {
		grace = -1 // the flag's 0 means now; the library's 0 means its default
	}
	if parallel < 1 {
		return fmt.Errorf("--max-parallel %d: want 1 or more", parallel)
	}
	// Lines of parallel moves interleave; each names its bucket.
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(e.stderr, format, args...)
	}
	results, err := c.RunMoves(ctx, moves, shardedapi.RunMovesOptions{
		Parallel: parallel,
		Move: shardedapi.MoveOptions{Grace: grace, Progress: func(ev shardedapi.MoveEvent) {
			line := fmt.Sprintf("  bucket %d: %s, %d rows copied", ev.Bucket, ev.State, ev.Rows)
			if ev.Pause > 0 {
				line += fmt.Sprintf(", writes paused %s", ev.Pause.Round(time.Millisecond))
			}
			if ev.Msg != "" {
				line += ": " + ev.Msg
			}
			say("%s\n", line)
		}},
		Started: func(i, n, b int, to string) { say("[%d/%d] bucket %d → %s\n", i, n, b, to) },
		Finished: func(r shardedapi.MoveResult) {
			if r.Err != nil {
				say("  bucket %d FAILED after %s: %v\n", r.Bucket, r.Elapsed.Round(time.Millisecond), r.Err)
				return
			}
			say("  bucket %d done in %s\n", r.Bucket, r.Elapsed.Round(time.Millisecond))
		},
	})
	if results == nil || err == nil {
		return err
	}
	failed := 0
	for _, r := range results {
		if r.Err != nil {
			failed++
		}
	}
	say("%d of %d move(s) failed; rerun the command to resume or retry them\n", failed, len(results))
	return fmt.Errorf("%d of %d bucket move(s) failed: %w", failed, len(results), err)
}

func printPlan(e *env, c *shardedapi.Cluster, moves map[int]string) {
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "BUCKET\tFROM\tTO")
	for _, b := range slices.Sorted(maps.Keys(moves)) {
		from, _ := c.ShardOfBucket(b)
		fmt.Fprintf(w, "%d\t%s\t%s\n", b, from.Name(), moves[b])
	}
	fmt.Fprintf(w, "%d move(s)\n", len(moves))
	_ = w.Flush()
}

func newShardsMoveCmd(e *env) *cobra.Command {
	var f shardsFlags
	var bucketList, to string
	var cancel bool
	cmd := &cobra.Command{
		Use:   "move --bucket N[,M...] --to SHARD",
		Short: "Move buckets to a shard online; rerun to resume an interrupted move",
		Example: `  assetctl shards move --bucket 7 --to s1
  assetctl shards move --bucket 7 --cancel   # roll back an unfinished move before its cutover`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			buckets, err := parseBuckets(bucketList)
			if err != nil {
				return err
			}
			c, err := f.open(ctx, e, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			if cancel {
				for _, b := range buckets {
					if err := c.CancelMove(ctx, b); err != nil {
						return err
					}
					fmt.Fprintf(e.stderr, "bucket %d: move rolled back; the source stays the owner\n", b)
				}
				return nil
			}
			if to == "" {
				return errors.New("--to is required: the shard to move the buckets to")
			}
			moves := map[int]string{}
			for _, b := range buckets {
				moves[b] = to
			}
			return runMoves(ctx, e, c, moves, f.grace, f.parallel)
		},
	}
	f.register(cmd)
	f.registerParallel(cmd)
	cmd.Flags().StringVar(&bucketList, "bucket", "", "bucket number(s), comma-separated")
	cmd.Flags().StringVar(&to, "to", "", "the target shard")
	cmd.Flags().BoolVar(&cancel, "cancel", false, "roll back the buckets' unfinished moves instead")
	_ = cmd.MarkFlagRequired("bucket")
	return cmd
}

func newShardsRebalanceCmd(e *env) *cobra.Command {
	var f shardsFlags
	var plan bool
	var by string
	cmd := &cobra.Command{
		Use:   "rebalance [--plan] [--by buckets|rows|traffic] [--max-parallel K]",
		Short: "Spread each region's buckets evenly over its shards with the fewest moves",
		Example: `  assetctl shards rebalance --plan
  assetctl shards rebalance --by rows --plan
  assetctl shards rebalance
  assetctl shards rebalance --max-parallel 4   # 4 moves at once; each uses a replication slot and a WAL sender on its source`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := f.open(ctx, e, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var moves map[int]string
			switch by {
			case "buckets":
				moves, err = c.PlanRebalance(ctx)
			case "rows":
				rep, herr := c.Hotspots(ctx, shardedapi.HotspotOptions{})
				if herr != nil {
					return herr
				}
				if rep.Partial {
					return errors.New("rebalance --by rows: some shards did not answer; their rows are unknown")
				}
				rows := map[int]int64{}
				for _, b := range rep.Buckets {
					rows[b.Bucket] = b.Rows
				}
				moves, err = c.PlanRebalanceByLoad(ctx, func(b int) int64 { return rows[b] }, 0)
			case "traffic":
				traffic, terr := c.Traffic(ctx)
				if terr != nil {
					return terr
				}
				load := map[int]int64{}
				for _, t := range traffic {
					load[t.Bucket] = t.Reads + t.Writes
				}
				moves, err = c.PlanRebalanceByLoad(ctx, func(b int) int64 { return load[b] }, 0)
			default:
				return fmt.Errorf("--by %q: want buckets, rows or traffic", by)
			}
			if err != nil {
				return err
			}
			printPlan(e, c, moves)
			if plan {
				return nil
			}
			return runMoves(ctx, e, c, moves, f.grace, f.parallel)
		},
	}
	f.register(cmd)
	f.registerParallel(cmd)
	cmd.Flags().BoolVar(&plan, "plan", false, "print the moves without making them")
	cmd.Flags().StringVar(&by, "by", "buckets", "what to even out: buckets (count), rows, or traffic (reads+writes of all processes)")
	return cmd
}

// drainPlan sends every bucket of name to the other shards of its region,
// each to the one with the fewest buckets at that point.
func drainPlan(c *shardedapi.Cluster, name string) (map[int]string, error) {
	sh := c.Shard(name)
	if sh == nil {
		return nil, fmt.Errorf("drain %q: no such shard in the configuration", name)
	}
	count := map[string]int{}
	var mine []int
	for b := range c.Buckets() {
		owner, _ := c.ShardOfBucket(b)
		if owner == sh {
			mine = append(mine, b)
		}
		count[owner.Name()]++
	}
	var others []string
	for _, s := range c.Shards() {
		if s != sh && s.Region() == sh.Region() {
			others = append(others, s.Name())
		}
	}
	if len(others) == 0 {
		return nil, fmt.Errorf("drain %q: region %q has no other shard to take its buckets", name, sh.Region())
	}
	moves := map[int]string{}
	for _, b := range mine {
		best := others[0]
		for _, o := range others[1:] {
			if count[o] < count[best] {
				best = o
			}
		}
		moves[b] = best
		count[best]++
	}
	return moves, nil
}

func newShardsDrainCmd(e *env) *cobra.Command {
	var f shardsFlags
	var plan bool
	cmd := &cobra.Command{
		Use:     "drain NAME",
		Short:   "Move every bucket off a shard to the other shards of its region",
		Example: "  assetctl shards drain s2 --plan",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := f.open(ctx, e, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			moves, err := drainPlan(c, args[0])
			if err != nil {
				return err
			}
			printPlan(e, c, moves)
			if plan {
				return nil
			}
			return runMoves(ctx, e, c, moves, f.grace, f.parallel)
		},
	}
	f.register(cmd)
	f.registerParallel(cmd)
	cmd.Flags().BoolVar(&plan, "plan", false, "print the moves without making them")
	return cmd
}
