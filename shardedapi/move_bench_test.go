package shardedapi

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkMoveCopy copies one bucket of 200,000 users from one shard to
// the other, three ways in the same run: "bare-pipe" is a plain COPY TO
// STDOUT | COPY FROM STDIN (binary) of the same rows (the baseline),
// "mover-copy" is the mover's copy step (the same pipe inside an
// exported snapshot, clearing the target's bucket first), "move" is a
// whole MoveBucket (slot, copy, catch-up, verify, cutover, cleanup).
// Each reports rows/s and MB/s; the ratio to bare-pipe is the number to
// watch.
//
//	go test ./shardedapi -run '^$' -bench BenchmarkMoveCopy -benchtime 3x
func BenchmarkMoveCopy(b *testing.B) {
	mc := newMoveCluster(b, 2, Layout{})
	ctx := context.Background()
	const bucket, rows = 7, 200_000
	src, _ := mc.c.ShardOfBucket(bucket)
	dstName := mc.otherShard(b, bucket)
	dst := mc.c.Shard(dstName)
	if _, err := src.Pool().Exec(ctx, `INSERT INTO users (id, region, email, name)
		SELECT ((1000000 + g / 1024)::bigint << 22) | ($1::bigint << 10) | (g % 1024), '', 'user' || g || '@example.com', 'name of user ' || g
		FROM generate_series(0, $2 - 1) g`, bucket, rows); err != nil {
		b.Fatal(err)
	}
	var size int64
	if err := src.Pool().QueryRow(ctx, `SELECT sum(pg_column_size(u.*)) FROM users u`).Scan(&size); err != nil {
		b.Fatal(err)
	}
	filter := fmt.Sprintf(movedTables[0].filter, bucket)
	report := func(b *testing.B, elapsed time.Duration, n int) {
		secs := elapsed.Seconds() / float64(n)
		b.ReportMetric(rows/secs, "rows/s")
		b.ReportMetric(float64(size)/1e6/secs, "MB/s")
	}
	b.Run("bare-pipe", func(b *testing.B) {
		var elapsed time.Duration
		for b.Loop() {
			if _, err := dst.Pool().Exec(ctx, `DELETE FROM users WHERE `+filter); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			sc, err := src.Pool().Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			dc, err := dst.Pool().Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			pr, pw := io.Pipe()
			var wg sync.WaitGroup
			wg.Go(func() {
				_, err := sc.Conn().PgConn().CopyTo(ctx, pw, `COPY (SELECT `+movedTables[0].cols+` FROM users WHERE `+filter+`) TO STDOUT (FORMAT binary)`)
				pw.CloseWithError(err)
			})
			if _, err := dc.Conn().PgConn().CopyFrom(ctx, pr, `COPY users (`+movedTables[0].cols+`) FROM STDIN (FORMAT binary)`); err != nil {
				b.Fatal(err)
			}
			wg.Wait()
			sc.Release()
			dc.Release()
			elapsed += time.Since(start)
		}
		report(b, elapsed, b.N)
	})
	b.Run("mover-copy", func(b *testing.B) {
		var elapsed time.Duration
		for b.Loop() {
			// A move starts on a target without the bucket's rows (as in
			// bare-pipe, the clearing is not timed).
			if _, err := dst.Pool().Exec(ctx, `DELETE FROM users WHERE `+filter); err != nil {
				b.Fatal(err)
			}
			// A snapshot exported by an open transaction stands in for the
			// slot's.
			hold, err := src.Pool().Begin(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := hold.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`); err != nil {
				b.Fatal(err)
			}
			var snap string
			if err := hold.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snap); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			n, err := copyBucket(ctx, src, dst, bucket, snap, func(pgx.Tx) error { return nil })
			elapsed += time.Since(start)
			_ = hold.Rollback(ctx)
			if err != nil || n != rows {
				b.Fatalf("copyBucket: %d rows, %v", n, err)
			}
		}
		report(b, elapsed, b.N)
	})
	if _, err := dst.Pool().Exec(ctx, `DELETE FROM users WHERE `+filter); err != nil {
		b.Fatal(err)
	}
	b.Run("move", func(b *testing.B) {
		var elapsed time.Duration
		for b.Loop() {
			to := mc.otherShard(b, bucket)
			start := time.Now()
			if _, err := mc.c.MoveBucket(ctx, bucket, to, MoveOptions{Grace: -1}); err != nil {
				b.Fatal(err)
			}
			elapsed += time.Since(start)
		}
		report(b, elapsed, b.N)
	})
}

// BenchmarkMoveCutoverPause moves a bucket back and forth while writers
// update its users at about 500 writes/s through a Store of another
// process, and reports the fence hold time at cutover (pause-p50/p99/max)
// and the slowest writes seen during the moves (write-p99/max).
//
//	go test ./shardedapi -run '^$' -bench BenchmarkMoveCutoverPause -benchtime 10x
func BenchmarkMoveCutoverPause(b *testing.B) {
	mc := newMoveCluster(b, 2, Layout{})
	ctx := context.Background()
	const bucket = 9
	writer := mc.open(b)
	store := NewStore(writer, StoreOptions{})
	var ids []ID
	for _, e := range emailsInBucket(mc.c, bucket, 200, "w") {
		u, err := store.CreateUser(ctx, NewUser{Email: e, Name: "0"})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	var (
		stop     atomic.Bool
		mu       sync.Mutex
		lat      []time.Duration
		failures atomic.Int64
		wg       sync.WaitGroup
	)
	const writers, perSecond = 4, 500
	for w := range writers {
		wg.Go(func() {
			tick := time.NewTicker(time.Second * writers / perSecond)
			defer tick.Stop()
			for i := w; !stop.Load(); i += writers {
				<-tick.C
				name := fmt.Sprint(i)
				start := time.Now()
				if _, err := store.UpdateUser(ctx, ids[i%len(ids)], UserChange{Name: &name}); err != nil {
					failures.Add(1)
				}
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	var pauses []time.Duration
	for b.Loop() {
		to := mc.otherShard(b, bucket)
		if _, err := mc.c.MoveBucket(ctx, bucket, to, MoveOptions{Grace: -1, Progress: func(e MoveEvent) {
			if e.Pause > 0 {
				pauses = append(pauses, e.Pause)
				if e.Pause > 50*time.Millisecond {
					b.Logf("slow cutover %s: %s", e.Pause, e.Msg)
				}
			}
		}}); err != nil {
			b.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d writes failed during the moves; want none", n)
	}
	pct := func(d []time.Duration, p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(float64(len(s))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(pauses, 0.5), "pause-p50-ms")
	b.ReportMetric(pct(pauses, 0.99), "pause-p99-ms")
	b.ReportMetric(pct(pauses, 1), "pause-max-ms")
	b.ReportMetric(pct(lat, 0.5), "write-p50-ms")
	b.ReportMetric(pct(lat, 0.99), "write-p99-ms")
	b.ReportMetric(pct(lat, 1), "write-max-ms")
	b.ReportMetric(float64(len(lat)), "writes")
}

// BenchmarkMoveCatchUp measures the change stream's apply rate: while the
// mover stands at catching_up, 20,000 users are inserted into the bucket
// on the source in 20 transactions of 1,000; the time from resuming to
// "caught up" gives the rows/s applied to the target.
//
//	go test ./shardedapi -run '^$' -bench BenchmarkMoveCatchUp -benchtime 3x
func BenchmarkMoveCatchUp(b *testing.B) {
	mc := newMoveCluster(b, 2, Layout{})
	ctx := context.Background()
	const bucket, rows, batch = 11, 20_000, 1000
	var elapsed time.Duration
	round := 0
	for b.Loop() {
		round++
		src, _ := mc.c.ShardOfBucket(bucket)
		var start time.Time
		_, err := mc.c.MoveBucket(ctx, bucket, mc.otherShard(b, bucket), MoveOptions{Grace: -1,
			hook: func(state string) error {
				if state != MoveCatchingUp {
					return nil
				}
				for i := 0; i < rows; i += batch {
					if _, err := src.Pool().Exec(ctx, `INSERT INTO users (id, region, email, name)
						SELECT ((2000000 + $3::bigint * 100000 + g / 1024)::bigint << 22) | ($1::bigint << 10) | (g % 1024), '', 'c' || $3 || '-' || g || '@example.com', 'catch-up'
						FROM generate_series($2::int, $2::int + $4 - 1) g`, bucket, i, round, batch); err != nil {
						return err
					}
				}
				start = time.Now()
				return nil
			},
			Progress: func(e MoveEvent) {
				if e.Msg == "caught up" {
					elapsed += time.Since(start)
				}
			}})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/elapsed.Seconds(), "applied-rows/s")
}
