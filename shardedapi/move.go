package shardedapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// An online bucket move (MoveBucket) copies one bucket's rows from the
// shard that owns it to another while traffic continues, then cuts over
// inside the source's write fence. The steps, each recorded in the
// catalog's moves table so a killed mover resumes or rolls back:
//
//	planned      the move row exists; nothing touched yet
//	copying      target marked incoming, source publication (row filter
//	             on the bucket) created, logical slot created with an
//	             exported snapshot, the bucket's rows COPYed (binary) in
//	             that snapshot to the target with the slot's position
//	catching_up  the slot's change stream is applied to the target, one
//	             source transaction per target transaction together with
//	             its position; chunked hashes compare source and target
//	cutover      the source's fence is taken exclusively, a marker is
//	             written to the source's WAL, the target applies up to
//	             it, mismatched chunks are re-checked, the source is
//	             marked moved (the point of no return), the target owned,
//	             the catalog's map flipped, the bucket's cache keys dropped
//	cleanup      slot and publication dropped; after the grace period the
//	             source's copies of the rows are deleted
//	done, failed final; a failure before the point of no return leaves
//	             the source the owner and drops the slot and publication
const (
	MovePlanned    = "planned"
	MoveCopying    = "copying"
	MoveCatchingUp = "catching_up"
	MoveCutover    = "cutover"
	MoveCleanup    = "cleanup"
	MoveDone       = "done"
	MoveFailed     = "failed"
)

// Errors of MoveBucket that callers branch on.
var (
	// ErrMoveLeased means another mover holds the lease of the bucket's
	// move; rerun after it ends or its lease expires.
	ErrMoveLeased = errors.New("shardedapi: another mover holds this move's lease")
	// ErrAlreadyOwner means the target shard already owns the bucket.
	ErrAlreadyOwner = errors.New("shardedapi: the target shard already owns the bucket")
	// ErrNotLogical means a source shard's server runs without
	// wal_level=logical, which online moves need.
	ErrNotLogical = errors.New("shardedapi: the source shard's server does not run with wal_level=logical")
	// ErrVerifyMismatch means source and target rows of a bucket still
	// differed at cutover; the move was rolled back.
	ErrVerifyMismatch = errors.New("shardedapi: source and target rows differ")
)

// KeyInvalidator drops cache keys; *Cache implements it. The mover
// drops every moved row's key after cutover.
type KeyInvalidator interface {
	Invalidate(ctx context.Context, key string) error
}

// MoveEvent is a progress report of a move.
type MoveEvent struct {
	MoveID int64
	Bucket int
	State  string
	Rows   int64         // rows copied so far
	Pause  time.Duration // at cutover: how long the fence was held exclusively
	Msg    string
}

// MoveOptions configure MoveBucket. The zero value is the default.
type MoveOptions struct {
	// Grace is how long the source keeps its copy of the rows after
	// cutover before they are deleted: longer than any process's map
	// refresh (Options.RefreshInterval). Default 1m; negative deletes at
	// once (also when resuming a move whose cutover recorded a longer
	// one).
	Grace time.Duration
	// Lease is how long the move's lease lasts without renewal; a mover
	// killed mid-move blocks a rerun for at most this long. Default 15s.
	Lease time.Duration
	// CutoverWait bounds how long the source's fence is held waiting for
	// the target to apply the last changes; past it the cutover is rolled
	// back and retried (up to 3 times). Default 5s.
	CutoverWait time.Duration
	// Cache receives the moved rows' cache keys after cutover. Default
	// nil: none dropped (the rows are identical on the new owner, and the
	// read fence keeps stale processes from re-filling from the source).
	Cache KeyInvalidator
	// Progress receives progress events. Default nil.
	Progress func(MoveEvent)

	// hook, in tests, runs at each state and may fail the move there.
	hook func(state string) error
}

// movedTable is a sharded table that bucket moves carry: its columns (the
// stored ones, in COPY order), its conflict key and its bucket filter.
type movedTable struct {
	name   string
	cols   string
	key    string
	filter string // SQL with %d for the bucket
}

// movedTables are the tables MoveBucket moves. users' bucket is generated
// from the id (and not published by PG15), so it is filtered by the id.
var movedTables = []movedTable{
	{name: "users", cols: "id, region, email, name, created_at, updated_at, balance", key: "id", filter: "((id >> 10) & 4095) = %d"},
	{name: "documents", cols: "collection, id, bucket, body, rev, created_at, updated_at", key: "collection, id", filter: "bucket = %d"},
	{name: "shardedapi_saga_barrier", cols: "saga_id, step, op, bucket, created_at", key: "saga_id, step, op", filter: "bucket = %d"},
}

// Move is a row of the catalog's moves table.
type Move struct {
	ID          int64
	Bucket      int
	Source      string
	Target      string
	State       string
	Slot        string
	Publication string
	LeaseOwner  string
	LeaseUntil  *time.Time
	RowsCopied  int64
	Error       string
	UpdatedAt   time.Time
}

const moveColumns = `id, bucket, source, target, state, slot, publication, lease_owner, lease_until, rows_copied, error, updated_at`

func scanMove(row pgx.Row) (Move, error) {
	var m Move
	err := row.Scan(&m.ID, &m.Bucket, &m.Source, &m.Target, &m.State, &m.Slot, &m.Publication, &m.LeaseOwner, &m.LeaseUntil, &m.RowsCopied, &m.Error, &m.UpdatedAt)
	return m, err
}

// Moves lists the moves that are not done or failed, and the newest
// finished ones (up to limit in all), newest first.
func (c *Cluster) Moves(ctx context.Context, limit int) ([]Move, error) {
	rows, err := c.catalog.Query(ctx, `SELECT `+moveColumns+` FROM moves ORDER BY state IN ('done', 'failed'), id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list moves: %w", err)
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Move, error) { return scanMove(r) })
	if err != nil {
		return nil, fmt.Errorf("list moves: %w", err)
	}
	return ms, nil
}

// mover runs one move.
type mover struct {
	c     *Cluster
	opts  MoveOptions
	m     Move
	me    string
	src   *Shard
	dst   *Shard
	lease context.CancelFunc

	stream *applier // running change stream, if any
}

// MoveBucket moves bucket's rows to shard to, online (see the state list
// above), and returns when the move is done. If the bucket already has an
// unfinished move to the same shard (a killed mover's), it resumes it.
// Bad input changes nothing: an unknown bucket or shard, a target that
// already owns the bucket (ErrAlreadyOwner), another region, a target
// whose schema lags (*SchemaLagError), a source without wal_level=logical
// (ErrNotLogical), a move held by a live mover (ErrMoveLeased).
//
// Cancelling ctx stops the mover where it is and keeps the move
// resumable (rerun MoveBucket, or CancelMove to roll it back); any other
// failure before cutover rolls the move back.
func (c *Cluster) MoveBucket(ctx context.Context, bucket int, to string, opts MoveOptions) (Move, error) {
	if opts.Grace == 0 {
		opts.Grace = time.Minute
	}
	if opts.Lease <= 0 {
		opts.Lease = 15 * time.Second
	}
	if opts.CutoverWait <= 0 {
		opts.CutoverWait = 5 * time.Second
	}
	mv := &mover{c: c, opts: opts, me: leaseOwner()}
	if err := mv.claim(ctx, bucket, to); err != nil {
		return Move{}, fmt.Errorf("move bucket %d to %q: %w", bucket, to, err)
	}
	defer mv.release()
	err := mv.run(ctx)
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrMoveLeased) && mv.beforePointOfNoReturn() {
		if rerr := mv.rollback(context.WithoutCancel(ctx), err); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		return mv.m, fmt.Errorf("move bucket %d to %q (move %d, state %s): %w", bucket, to, mv.m.ID, mv.m.State, err)
	}
	return mv.m, nil
}

func leaseOwner() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + ":" + strconv.Itoa(os.Getpid()) + ":" + hex.EncodeToString(b)
}

func (mv *mover) emit(msg string) {
	if mv.opts.Progress != nil {
		mv.opts.Progress(MoveEvent{MoveID: mv.m.ID, Bucket: mv.m.Bucket, State: mv.m.State, Rows: mv.m.RowsCopied, Msg: msg})
	}
}

// validate checks a new move's input against the map and the shards.
func (mv *mover) validate(ctx context.Context, bucket int, to string) error {
	c := mv.c
	src, err := c.ShardOfBucket(bucket)
	if err != nil {
		return err
	}
	dst := c.shards[to]
	if dst == nil {
		return &UnknownShardError{Shard: to, MapVersion: c.MapVersion(), Buckets: []int{bucket}}
	}
	var region string
	err = c.catalog.QueryRow(ctx, `SELECT region FROM shards WHERE name = $1`, to).Scan(&region)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("shard %q is configured but not in the catalog: run `assetctl shards add` first", to)
	}
	if err != nil {
		return fmt.Errorf("read shard %q: %w", to, err)
	}
	if src == dst {
		return fmt.Errorf("%w (%q, map version %d)", ErrAlreadyOwner, to, c.MapVersion())
	}
	if src.Region() != region {
		return fmt.Errorf("bucket %d belongs to region %q; shard %q is in region %q: buckets never leave their region", bucket, src.Region(), to, region)
	}
	if err := checkSchema(ctx, to, dst.pool); err != nil {
		return err
	}
	if err := checkSchema(ctx, src.name, src.pool); err != nil {
		return err
	}
	var level string
	if err := src.pool.QueryRow(ctx, `SHOW wal_level`).Scan(&level); err != nil {
		return src.Err(ctx, "read wal_level", err)
	}
	if level != "logical" {
		return fmt.Errorf("%w (shard %q has wal_level=%s): restart it with wal_level=logical", ErrNotLogical, src.name, level)
	}
	return nil
}

// claim finds the bucket's unfinished move (or plans a new one) and takes
// its lease, renewed in the background until release.
func (mv *mover) claim(ctx context.Context, bucket int, to string) error {
	c := mv.c
	if err := c.Refresh(ctx); err != nil {
		return err
	}
	m, err := scanMove(c.catalog.QueryRow(ctx, `SELECT `+moveColumns+` FROM moves WHERE bucket = $1 AND state NOT IN ('done', 'failed')`, bucket))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if err := mv.validate(ctx, bucket, to); err != nil {
			return err
		}
		src, _ := c.ShardOfBucket(bucket)
		m, err = scanMove(c.catalog.QueryRow(ctx, `INSERT INTO moves (bucket, source, target, state, lease_owner, lease_until)
			VALUES ($1, $2, $3, 'planned', $4, now() + $5::interval) RETURNING `+moveColumns, bucket, src.name, to, mv.me, mv.opts.Lease.String()))
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23505" {
				return fmt.Errorf("%w: another mover planned a move of bucket %d just now", ErrMoveLeased, bucket)
			}
			return fmt.Errorf("plan move: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read moves: %w", err)
	default:
		if m.Target != to {
			return fmt.Errorf("bucket %d has an unfinished move %d to %q: rerun with --to %s, or cancel it first", bucket, m.ID, m.Target, m.Target)
		}
		err := c.catalog.QueryRow(ctx, `UPDATE moves SET lease_owner = $2, lease_until = now() + $3::interval, updated_at = now()
			WHERE id = $1 AND (lease_owner = $2 OR lease_until IS NULL OR lease_until < now()) RETURNING id`, m.ID, mv.me, mv.opts.Lease.String()).Scan(&m.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w (move %d, owner %s): wait until it ends or its lease expires", ErrMoveLeased, m.ID, m.LeaseOwner)
		}
		if err != nil {
			return fmt.Errorf("take lease of move %d: %w", m.ID, err)
		}
	}
	mv.m = m
	mv.src, mv.dst = c.shards[m.Source], c.shards[m.Target]
	if mv.src == nil || mv.dst == nil {
		return fmt.Errorf("move %d names shards %q → %q; configure both", m.ID, m.Source, m.Target)
	}
	// Renew the lease at a third of its length; losing it stops nothing
	// by itself, but every state change checks it (setState).
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	mv.lease = cancel
	go func() {
		t := time.NewTicker(mv.opts.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
				_, _ = c.catalog.Exec(lctx, `UPDATE moves SET lease_until = now() + $3::interval WHERE id = $1 AND lease_owner = $2`, m.ID, mv.me, mv.opts.Lease.String())
			}
		}
	}()
	return nil
}

// release stops the stream and gives up the lease.
func (mv *mover) release() {
	if mv.stream != nil {
		mv.stream.stop()
		mv.stream = nil
	}
	if mv.lease != nil {
		mv.lease()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = mv.c.catalog.Exec(ctx, `UPDATE moves SET lease_until = NULL, lease_owner = '' WHERE id = $1 AND lease_owner = $2`, mv.m.ID, mv.me)
	}
}

// setState records a state change if this mover still holds the lease.
func (mv *mover) setState(ctx context.Context, state string, set string, args ...any) error {
	q := `UPDATE moves SET state = $3, updated_at = now()` + set + ` WHERE id = $1 AND lease_owner = $2 RETURNING id`
	err := mv.c.catalog.QueryRow(ctx, q, append([]any{mv.m.ID, mv.me, state}, args...)...).Scan(new(int64))
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: the lease of move %d was lost (another mover took it over)", ErrMoveLeased, mv.m.ID)
	}
	if err != nil {
		return fmt.Errorf("record move state %s: %w", state, err)
	}
	mv.m.State = state
	mv.emit("")
	return nil
}

func (mv *mover) beforePointOfNoReturn() bool {
	switch mv.m.State {
	case MovePlanned, MoveCopying, MoveCatchingUp:
		return true
	case MoveCutover:
		// The cutover's source commit is the point of no return.
		moved, err := mv.sourceMoved(context.Background())
		return err == nil && !moved
	}
	return false
}

func (mv *mover) atHook(state string) error {
	if mv.opts.hook != nil {
		return mv.opts.hook(state)
	}
	return nil
}

// run drives the state machine from the recorded state to done.
func (mv *mover) run(ctx context.Context) error {
	for {
		if err := mv.atHook(mv.m.State); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		switch mv.m.State {
		case MovePlanned:
			err = mv.prepare(ctx)
		case MoveCopying:
			err = mv.copy(ctx)
		case MoveCatchingUp:
			err = mv.catchUp(ctx)
		case MoveCutover:
			err = mv.cutover(ctx)
		case MoveCleanup:
			err = mv.cleanup(ctx)
		case MoveDone:
			return nil
		default:
			return fmt.Errorf("move %d is %s", mv.m.ID, mv.m.State)
		}
		if err != nil {
			return err
		}
	}
}

func (mv *mover) names() (slot, pub string) {
	n := "shardedapi_move_" + strconv.FormatInt(mv.m.ID, 10)
	return n, n
}

// prepare marks the target incoming (a stale write there is refused) and
// clears any leftover rows of the bucket on it.
func (mv *mover) prepare(ctx context.Context) error {
	b := mv.m.Bucket
	err := pgx.BeginTxFunc(ctx, mv.dst.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO shardedapi_bucket_owner (bucket, state, move_id) VALUES ($1, 'incoming', $2)
			ON CONFLICT (bucket) DO UPDATE SET state = 'incoming', move_id = $2, updated_at = now()`, b, mv.m.ID); err != nil {
			return err
		}
		return deleteBucketRows(ctx, tx, b)
	})
	if err != nil {
		return mv.dst.Err(ctx, "prepare target", err)
	}
	slot, pub := mv.names()
	return mv.setState(ctx, MoveCopying, `, slot = $4, publication = $5`, slot, pub)
}

func deleteBucketRows(ctx context.Context, tx pgx.Tx, bucket int) error {
	for _, t := range movedTables {
		if _, err := tx.Exec(ctx, `DELETE FROM `+t.name+` WHERE `+fmt.Sprintf(t.filter, bucket)); err != nil {
			return fmt.Errorf("delete %s rows of bucket %d: %w", t.name, bucket, err)
		}
	}
	return nil
}

// replConn opens a logical replication connection to sh.
func (mv *mover) replConn(ctx context.Context, sh *Shard) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(mv.c.dsn[sh.name])
	if err != nil {
		return nil, fmt.Errorf("parse DSN of shard %q: %w", sh.name, err)
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, sh.Err(ctx, "open replication connection", err)
	}
	return conn, nil
}

// dropSlotAndPublication removes the move's slot and publication from
// the source, if they exist (a slot retains WAL: never leave one behind).
func (mv *mover) dropSlotAndPublication(ctx context.Context) error {
	slot, pub := mv.names()
	// A walsender of a stream that just stopped (or of a killed mover)
	// may still hold the slot for a moment: end it, then drop the slot.
	for attempt := 0; ; attempt++ {
		_, err := mv.src.pool.Exec(ctx, `SELECT pg_terminate_backend(active_pid, 5000) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
		if err == nil {
			_, err = mv.src.pool.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		}
		var pgErr *pgconn.PgError
		if err != nil && errors.As(err, &pgErr) && pgErr.Code == "55006" && attempt < 50 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			return mv.src.Err(ctx, "drop replication slot", err)
		}
		break
	}
	if _, err := mv.src.pool.Exec(ctx, `DROP PUBLICATION IF EXISTS `+pgx.Identifier{pub}.Sanitize()); err != nil {
		return mv.src.Err(ctx, "drop publication", err)
	}
	return nil
}

// copy (re)creates the publication and slot and copies the bucket's rows
// in the slot's exported snapshot; the target's position is the slot's
// consistent point, committed with the rows. A copy cut short is redone
// from scratch.
func (mv *mover) copy(ctx context.Context) error {
	b := mv.m.Bucket
	slot, pub := mv.names()
	if err := mv.dropSlotAndPublication(ctx); err != nil {
		return err
	}
	var tables string
	for i, t := range movedTables {
		if i > 0 {
			tables += ", "
		}
		tables += t.name + " WHERE (" + fmt.Sprintf(t.filter, b) + ")"
	}
	if _, err := mv.src.pool.Exec(ctx, `CREATE PUBLICATION `+pgx.Identifier{pub}.Sanitize()+` FOR TABLE `+tables+` WITH (publish = 'insert, update, delete')`); err != nil {
		return mv.src.Err(ctx, "create publication", err)
	}
	repl, err := mv.replConn(ctx, mv.src)
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if !keep {
			repl.Close(context.WithoutCancel(ctx))
		}
	}()
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication})
	if err != nil {
		return mv.src.Err(ctx, "create replication slot", err)
	}
	start, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return fmt.Errorf("parse consistent point: %w", err)
	}
	rows, err := copyBucket(ctx, mv.src, mv.dst, b, res.SnapshotName, func(dst pgx.Tx) error {
		_, err := dst.Exec(ctx, `INSERT INTO shardedapi_move_progress (move_id, applied_lsn) VALUES ($1, $2)
			ON CONFLICT (move_id) DO UPDATE SET applied_lsn = $2, updated_at = now()`, mv.m.ID, start.String())
		return err
	})
	if err != nil {
		return err
	}
	mv.m.RowsCopied = rows
	// The exported snapshot's connection now streams the changes.
	mv.stream, err = startApplier(ctx, mv, repl, start)
	if err != nil {
		return err
	}
	keep = true
	return mv.setState(ctx, MoveCatchingUp, `, rows_copied = $4, consistent_lsn = $5`, rows, start.String())
}

// copyBucket copies bucket's rows of every moved table from src (in the
// exported snapshot) to dst, in one target transaction that first clears
// the bucket and finally runs also. It returns the rows copied.
func copyBucket(ctx context.Context, src, dst *Shard, bucket int, snapshot string, also func(pgx.Tx) error) (int64, error) {
	sconn, err := src.pool.Acquire(ctx)
	if err != nil {
		return 0, src.Err(ctx, "acquire connection", err)
	}
	defer sconn.Release()
	stx, err := sconn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, src.Err(ctx, "begin snapshot transaction", err)
	}
	defer stx.Rollback(context.WithoutCancel(ctx))
	if _, err := stx.Exec(ctx, `SET TRANSACTION SNAPSHOT '`+snapshot+`'`); err != nil {
		return 0, src.Err(ctx, "import snapshot", err)
	}
	var total int64
	err = pgx.BeginTxFunc(ctx, dst.pool, pgx.TxOptions{}, func(dtx pgx.Tx) error {
		if err := deleteBucketRows(ctx, dtx, bucket); err != nil {
			return err
		}
		for _, t := range movedTables {
			pr, pw := io.Pipe()
			var wg sync.WaitGroup
			var copyErr error
			wg.Go(func() {
				_, copyErr = stx.Conn().PgConn().CopyTo(ctx, pw, `COPY (SELECT `+t.cols+` FROM `+t.name+` WHERE `+fmt.Sprintf(t.filter, bucket)+`) TO STDOUT (FORMAT binary)`)
				pw.CloseWithError(copyErr)
			})
			tag, err := dtx.Conn().PgConn().CopyFrom(ctx, pr, `COPY `+t.name+` (`+t.cols+`) FROM STDIN (FORMAT binary)`)
			pr.CloseWithError(err)
			wg.Wait()
			if copyErr != nil {
				return src.Err(ctx, "copy "+t.name+" out", copyErr)
			}
			if err != nil {
				return dst.Err(ctx, "copy "+t.name+" in", err)
			}
			total += tag.RowsAffected()
		}
		return also(dtx)
	})
	return total, err
}

// ensureStream starts the change stream from the target's applied
// position if it is not running (after a resume).
func (mv *mover) ensureStream(ctx context.Context) error {
	if mv.stream != nil {
		return nil
	}
	var lsnText string
	err := mv.dst.pool.QueryRow(ctx, `SELECT applied_lsn::text FROM shardedapi_move_progress WHERE move_id = $1`, mv.m.ID).Scan(&lsnText)
	if errors.Is(err, pgx.ErrNoRows) {
		return mv.restartCopy(ctx, "the target has no applied position")
	}
	if err != nil {
		return mv.dst.Err(ctx, "read applied position", err)
	}
	start, err := pglogrepl.ParseLSN(lsnText)
	if err != nil {
		return err
	}
	var slots int
	slot, _ := mv.names()
	if err := mv.src.pool.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&slots); err != nil {
		return mv.src.Err(ctx, "read replication slots", err)
	}
	if slots == 0 {
		return mv.restartCopy(ctx, "the replication slot is gone")
	}
	repl, err := mv.replConn(ctx, mv.src)
	if err != nil {
		return err
	}
	if mv.stream, err = startApplier(ctx, mv, repl, start); err != nil {
		repl.Close(context.WithoutCancel(ctx))
		return err
	}
	return nil
}

// errRestartCopy makes run go back to copying.
var errRestartCopy = errors.New("restart copy")

func (mv *mover) restartCopy(ctx context.Context, why string) error {
	mv.emit("copying again: " + why)
	if err := mv.setState(ctx, MoveCopying, ""); err != nil {
		return err
	}
	return errRestartCopy
}

// catchUp applies the change stream until the target is within one
// marker round trip of the source, then verifies.
func (mv *mover) catchUp(ctx context.Context) error {
	if err := mv.ensureStream(ctx); err != nil {
		if errors.Is(err, errRestartCopy) {
			return nil
		}
		return err
	}
	// Two marker round trips: the first drains the backlog, the second
	// shows the stream keeps up.
	for range 2 {
		token, err := mv.emitMarker(ctx, mv.src.pool)
		if err != nil {
			return err
		}
		if err := mv.stream.waitFor(ctx, token, 0); err != nil {
			return err
		}
	}
	mv.emit("caught up")
	return mv.setState(ctx, MoveCutover, "")
}

// markerPrefix is the prefix of the WAL messages that mark positions of
// a move's change stream.
const markerPrefix = "shardedapi.move"

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// emitMarker writes a non-transactional logical message with a fresh
// token into the source's WAL: the stream delivers it after every
// transaction that committed before it, so once the applier has seen the
// token those are applied.
func (mv *mover) emitMarker(ctx context.Context, q querier) (string, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	token := strconv.FormatInt(mv.m.ID, 10) + ":" + hex.EncodeToString(b)
	if err := q.QueryRow(ctx, `SELECT pg_logical_emit_message(false, $1, $2)::text`, markerPrefix, token).Scan(new(string)); err != nil {
		return "", mv.src.Err(ctx, "emit marker", err)
	}
	// A walsender decodes only flushed WAL, and a message outside a
	// committing transaction is flushed only when something else is: a
	// transaction with an xid commits (and flushes) here, on another
	// connection, so the marker cannot sit unflushed under the fence.
	if _, err := mv.src.pool.Exec(ctx, `SELECT txid_current()`); err != nil {
		return "", mv.src.Err(ctx, "flush marker", err)
	}
	return token, nil
}

func (mv *mover) sourceMoved(ctx context.Context) (bool, error) {
	var state string
	err := mv.src.pool.QueryRow(ctx, `SELECT state FROM shardedapi_bucket_owner WHERE bucket = $1`, mv.m.Bucket).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, mv.src.Err(ctx, "read bucket owner", err)
	}
	return state == "moved", nil
}

// cutover fences the source, drains the stream past a marker, verifies,
// marks the source moved (the point of no return), then publishes the
// new owner.
func (mv *mover) cutover(ctx context.Context) error {
	moved, err := mv.sourceMoved(ctx)
	if err != nil {
		return err
	}
	if !moved {
		if err := mv.ensureStream(ctx); err != nil {
			if errors.Is(err, errRestartCopy) {
				return nil
			}
			return err
		}
		mismatched, err := verifyBucket(ctx, mv.src, mv.dst, mv.m.Bucket, nil, false)
		if err != nil {
			return err
		}
		var lastErr error
		for attempt := range 3 {
			// Drain the backlog that built up during verification before
			// taking the fence, so writers wait only for the last few
			// transactions.
			token, err := mv.emitMarker(ctx, mv.src.pool)
			if err != nil {
				return err
			}
			if err := mv.stream.waitFor(ctx, token, 0); err != nil {
				return err
			}
			lastErr = mv.fencedSwitch(ctx, mismatched)
			if lastErr == nil || !errors.Is(lastErr, errCutoverTimeout) {
				break
			}
			mv.emit(fmt.Sprintf("cutover attempt %d timed out; the source stays the owner, retrying", attempt+1))
		}
		if lastErr != nil {
			return lastErr
		}
	}
	if err := mv.atHook("cutover-committed"); err != nil {
		return err
	}
	// Past the point of no return: the target owns the bucket, then the
	// catalog says so. Both steps are idempotent for a resumed mover.
	if _, err := mv.dst.pool.Exec(ctx, `DELETE FROM shardedapi_bucket_owner WHERE bucket = $1`, mv.m.Bucket); err != nil {
		return mv.dst.Err(ctx, "mark target owner", err)
	}
	err = pgx.BeginTxFunc(ctx, mv.c.catalog, pgx.TxOptions{}, func(tx pgx.Tx) error {
		t, err := mv.c.loadTable(ctx, tx)
		if err != nil {
			return err
		}
		version := t.version
		if t.shardOf[mv.m.Bucket].name != mv.m.Target {
			if version, err = mv.c.writeMap(ctx, tx, map[int]string{mv.m.Bucket: mv.m.Target}, fmt.Sprintf("move %d: bucket %d %s → %s", mv.m.ID, mv.m.Bucket, mv.m.Source, mv.m.Target)); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `UPDATE moves SET state = 'cleanup', map_version = $3, cleanup_after = now() + $4::interval, updated_at = now()
			WHERE id = $1 AND lease_owner = $2`, mv.m.ID, mv.me, version, max(mv.opts.Grace, 0).String())
		if err == nil && tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: the lease of move %d was lost", ErrMoveLeased, mv.m.ID)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("publish the new owner: %w", err)
	}
	mv.m.State = MoveCleanup
	// Writers wait from the source's commit until here: stop the stream
	// only now, off that path.
	if mv.stream != nil {
		mv.stream.stop()
		mv.stream = nil
	}
	if err := mv.c.Refresh(ctx); err != nil {
		return err
	}
	mv.emit(fmt.Sprintf("map version %d: bucket %d is on %s", mv.c.MapVersion(), mv.m.Bucket, mv.m.Target))
	return mv.invalidateKeys(ctx)
}

var errCutoverTimeout = errors.New("the target did not apply the last changes in time")

// fencedSwitch is one cutover attempt: hold the source's fence
// exclusively, wait for the target to apply everything before a marker
// written under it, re-check mismatched chunks, mark the source moved and
// commit. On any failure the transaction rolls back and writers continue
// on the source.
func (mv *mover) fencedSwitch(ctx context.Context, mismatched []int) error {
	b := mv.m.Bucket
	tx, err := mv.src.pool.Begin(ctx)
	if err != nil {
		return mv.src.Err(ctx, "begin cutover", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int, $2::int)`, fenceLockClass, b); err != nil {
		return mv.src.Err(ctx, "take the bucket fence", err)
	}
	start := time.Now()
	token, err := mv.emitMarker(ctx, tx)
	if err != nil {
		return err
	}
	if err := mv.stream.waitFor(ctx, token, mv.opts.CutoverWait); err != nil {
		return err
	}
	drained := time.Since(start)
	if left, err := verifyBucket(ctx, mv.src, mv.dst, b, mismatched, true); err != nil {
		return err
	} else if len(left) > 0 {
		return fmt.Errorf("%w: bucket %d, %d hash chunk(s) differ after the target applied every change", ErrVerifyMismatch, b, len(left))
	}
	if err := mv.atHook("fenced"); err != nil {
		return err
	}
	// The point of no return belongs to the lease holder only: a mover
	// that stalled past its lease must not cut over under another one.
	var held bool
	if err := mv.c.catalog.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM moves WHERE id = $1 AND lease_owner = $2 AND lease_until > now())`, mv.m.ID, mv.me).Scan(&held); err != nil {
		return fmt.Errorf("check lease of move %d: %w", mv.m.ID, err)
	}
	if !held {
		return fmt.Errorf("%w: the lease of move %d expired before cutover", ErrMoveLeased, mv.m.ID)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO shardedapi_bucket_owner (bucket, state, move_id) VALUES ($1, 'moved', $2)
		ON CONFLICT (bucket) DO UPDATE SET state = 'moved', move_id = $2, updated_at = now()`, b, mv.m.ID); err != nil {
		return mv.src.Err(ctx, "mark source moved", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return mv.src.Err(ctx, "commit cutover", err)
	}
	pause := time.Since(start)
	if mv.opts.Progress != nil {
		mv.opts.Progress(MoveEvent{MoveID: mv.m.ID, Bucket: b, State: MoveCutover, Rows: mv.m.RowsCopied, Pause: pause,
			Msg: fmt.Sprintf("source fenced and marked moved (last changes applied in %s, %d chunk(s) re-verified)", drained.Round(time.Millisecond), len(mismatched))})
	}
	return nil
}

// invalidateKeys drops the cache keys of every row now on the target.
func (mv *mover) invalidateKeys(ctx context.Context) error {
	if mv.opts.Cache == nil {
		return nil
	}
	var keys []string
	rows, err := mv.dst.pool.Query(ctx, `SELECT id FROM users WHERE `+fmt.Sprintf(movedTables[0].filter, mv.m.Bucket))
	if err != nil {
		return mv.dst.Err(ctx, "list moved users", err)
	}
	var id int64
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
		keys = append(keys, UserCacheKey(ID(id)))
		return nil
	}); err != nil {
		return mv.dst.Err(ctx, "list moved users", err)
	}
	var col, did string
	rows, err = mv.dst.pool.Query(ctx, `SELECT collection, id FROM documents WHERE bucket = $1`, mv.m.Bucket)
	if err != nil {
		return mv.dst.Err(ctx, "list moved documents", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&col, &did}, func() error {
		keys = append(keys, DocumentCacheKey(col, did))
		return nil
	}); err != nil {
		return mv.dst.Err(ctx, "list moved documents", err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan string)
	)
	for range 8 {
		wg.Go(func() {
			for k := range next {
				if err := mv.opts.Cache.Invalidate(ctx, k); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		// The rows are identical on the new owner, so a leftover entry is
		// not stale; report, do not fail the move.
		mv.c.log.WarnContext(ctx, "drop moved keys from the cache", "bucket", mv.m.Bucket, "failed", len(errs), "err", errs[0])
	}
	mv.emit(fmt.Sprintf("dropped %d cache keys", len(keys)))
	return nil
}

// cleanup drops the slot and publication, waits out the grace period and
// deletes the source's copy of the rows in batches.
func (mv *mover) cleanup(ctx context.Context) error {
	if mv.stream != nil {
		mv.stream.stop()
		mv.stream = nil
	}
	if err := mv.dropSlotAndPublication(ctx); err != nil {
		return err
	}
	var wait time.Duration
	var secs float64
	if err := mv.c.catalog.QueryRow(ctx, `SELECT greatest(0, extract(epoch FROM cleanup_after - now()))::float8 FROM moves WHERE id = $1`, mv.m.ID).Scan(&secs); err != nil {
		return fmt.Errorf("read cleanup time: %w", err)
	}
	wait = time.Duration(secs * float64(time.Second))
	if mv.opts.Grace < 0 {
		wait = 0 // the operator's override of a recorded grace period
	}
	if wait > 0 {
		mv.emit(fmt.Sprintf("grace period: deleting the source's rows in %s", wait.Round(time.Second)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	for _, t := range movedTables {
		for {
			tag, err := mv.src.pool.Exec(ctx, `DELETE FROM `+t.name+` WHERE (`+t.key+`) IN (SELECT `+t.key+` FROM `+t.name+` WHERE `+fmt.Sprintf(t.filter, mv.m.Bucket)+` LIMIT 5000)`)
			if err != nil {
				return mv.src.Err(ctx, "delete moved "+t.name, err)
			}
			if tag.RowsAffected() == 0 {
				break
			}
		}
	}
	if _, err := mv.dst.pool.Exec(ctx, `DELETE FROM shardedapi_move_progress WHERE move_id = $1`, mv.m.ID); err != nil {
		return mv.dst.Err(ctx, "drop move progress", err)
	}
	return mv.setState(ctx, MoveDone, "")
}

// rollback undoes a move that failed before the point of no return: the
// source stays the owner; slot, publication and the target's copy go.
func (mv *mover) rollback(ctx context.Context, cause error) error {
	if mv.stream != nil {
		mv.stream.stop()
		mv.stream = nil
	}
	var errs []error
	if err := mv.dropSlotAndPublication(ctx); err != nil {
		errs = append(errs, err)
	}
	err := pgx.BeginTxFunc(ctx, mv.dst.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var state string
		err := tx.QueryRow(ctx, `SELECT state FROM shardedapi_bucket_owner WHERE bucket = $1 FOR UPDATE`, mv.m.Bucket).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && state != "incoming") {
			return nil // the target owns the bucket for another reason: keep its rows
		}
		if err != nil {
			return err
		}
		if err := deleteBucketRows(ctx, tx, mv.m.Bucket); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM shardedapi_move_progress WHERE move_id = $1`, mv.m.ID); err != nil {
			return err
		}
		// A bucket that moved away from the target earlier stays fenced there.
		_, err = tx.Exec(ctx, `UPDATE shardedapi_bucket_owner SET state = 'moved' WHERE bucket = $1`, mv.m.Bucket)
		return err
	})
	if err != nil {
		errs = append(errs, mv.dst.Err(ctx, "roll back target", err))
	}
	if err := mv.setState(ctx, MoveFailed, `, error = $4`, cause.Error()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// CancelMove rolls back bucket's unfinished move, if it has not passed
// the point of no return (then it must be finished: rerun MoveBucket).
// It waits for no lease: it takes over an expired one, and refuses a
// live one with ErrMoveLeased.
func (c *Cluster) CancelMove(ctx context.Context, bucket int) error {
	m, err := scanMove(c.catalog.QueryRow(ctx, `SELECT `+moveColumns+` FROM moves WHERE bucket = $1 AND state NOT IN ('done', 'failed')`, bucket))
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("cancel move of bucket %d: it has no unfinished move", bucket)
	}
	if err != nil {
		return fmt.Errorf("cancel move of bucket %d: %w", bucket, err)
	}
	mv := &mover{c: c, opts: MoveOptions{Lease: 15 * time.Second}, me: leaseOwner()}
	if err := mv.claim(ctx, bucket, m.Target); err != nil {
		return fmt.Errorf("cancel move of bucket %d: %w", bucket, err)
	}
	defer mv.release()
	if !mv.beforePointOfNoReturn() {
		return fmt.Errorf("cancel move %d of bucket %d: it is past cutover (%s): rerun the move to finish it", m.ID, bucket, mv.m.State)
	}
	if err := mv.rollback(ctx, errors.New("cancelled")); err != nil {
		return fmt.Errorf("cancel move %d of bucket %d: %w", m.ID, bucket, err)
	}
	return nil
}
