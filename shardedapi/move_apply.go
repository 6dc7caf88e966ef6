package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// applier applies a move's change stream (pgoutput, filtered to the
// bucket by the publication) to the target: each source transaction in
// one target transaction that also records its end position, so a
// resumed stream restarts exactly after the last applied transaction.
// Inserts and updates are upserts and deletes tolerate missing rows, so
// replaying a transaction is harmless.
type applier struct {
	mv     *mover
	conn   *pgconn.PgConn
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every marker or error
	markers map[string]bool
	applied pglogrepl.LSN
	rows    int64
	err     error
}

type relation struct {
	name string
	cols []string
	oids []uint32
	key  []int // indexes of the replica identity columns
}

func startApplier(ctx context.Context, mv *mover, conn *pgconn.PgConn, start pglogrepl.LSN) (*applier, error) {
	_, pub := mv.names()
	slot, _ := mv.names()
	err := pglogrepl.StartReplication(ctx, conn, slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + pub + "'", "messages 'true'"},
	})
	if err != nil {
		return nil, mv.src.Err(ctx, "start replication", err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a := &applier{mv: mv, conn: conn, cancel: cancel, done: make(chan struct{}), changed: make(chan struct{}), markers: map[string]bool{}, applied: start}
	go func() {
		defer close(a.done)
		err := a.loop(sctx)
		conn.Close(context.Background())
		a.mu.Lock()
		if a.err == nil {
			a.err = err
			if err == nil || sctx.Err() != nil {
				a.err = errors.New("change stream stopped")
			}
		}
		close(a.changed)
		a.changed = make(chan struct{})
		a.mu.Unlock()
	}()
	return a, nil
}

// stop ends the stream and waits for it.
func (a *applier) stop() {
	a.cancel()
	<-a.done
}

// waitFor waits until the marker token has been seen (every transaction
// committed before it is applied), the stream fails, or timeout (0: no
// limit) passes (errCutoverTimeout).
func (a *applier) waitFor(ctx context.Context, token string, timeout time.Duration) error {
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		a.mu.Lock()
		seen, err, ch := a.markers[token], a.err, a.changed
		a.mu.Unlock()
		switch {
		case seen:
			return nil
		case err != nil:
			return fmt.Errorf("apply changes: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return errCutoverTimeout
		case <-ch:
		}
	}
}

func (a *applier) loop(ctx context.Context) error {
	rels := map[uint32]*relation{}
	var pending []pglogrepl.Message
	nextStatus := time.Now()
	for {
		if time.Now().After(nextStatus) {
			if err := a.sendStatus(ctx); err != nil {
				return err
			}
			nextStatus = time.Now().Add(time.Second)
		}
		rctx, cancel := context.WithDeadline(ctx, nextStatus)
		raw, err := a.conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return err
		}
		switch msg := raw.(type) {
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(msg)
		case *pgproto3.CopyData:
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return err
				}
				if ka.ReplyRequested {
					nextStatus = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return err
				}
				m, err := pglogrepl.Parse(xld.WALData)
				if err != nil {
					return fmt.Errorf("parse change: %w", err)
				}
				switch m := m.(type) {
				case *pglogrepl.RelationMessage:
					r := &relation{name: m.RelationName}
					for i, col := range m.Columns {
						r.cols = append(r.cols, col.Name)
						r.oids = append(r.oids, col.DataType)
						if col.Flags&1 != 0 {
							r.key = append(r.key, i)
						}
					}
					rels[m.RelationID] = r
				case *pglogrepl.BeginMessage:
					pending = pending[:0]
				case *pglogrepl.InsertMessage, *pglogrepl.UpdateMessage, *pglogrepl.DeleteMessage:
					pending = append(pending, m)
				case *pglogrepl.CommitMessage:
					if err := a.apply(ctx, rels, pending, m.TransactionEndLSN); err != nil {
						return err
					}
					pending = pending[:0]
				case *pglogrepl.LogicalDecodingMessage:
					if m.Prefix == markerPrefix {
						a.mu.Lock()
						a.markers[string(m.Content)] = true
						close(a.changed)
						a.changed = make(chan struct{})
						a.mu.Unlock()
					}
				}
			}
		}
	}
}

func (a *applier) sendStatus(ctx context.Context) error {
	a.mu.Lock()
	pos := a.applied
	a.mu.Unlock()
	return pglogrepl.SendStandbyStatusUpdate(ctx, a.conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos})
}

// apply writes one source transaction's changes and its end position to
// the target in one transaction.
func (a *applier) apply(ctx context.Context, rels map[uint32]*relation, changes []pglogrepl.Message, end pglogrepl.LSN) error {
	dst := a.mv.dst
	err := pgx.BeginTxFunc(ctx, dst.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// Every change of the transaction goes in one pipelined batch:
		// one round trip per source transaction, not per row.
		batch := &pgconn.Batch{}
		add := func(st stmt, err error) error {
			if err == nil {
				batch.ExecParams(st.sql, st.vals, st.oids, nil, nil)
			}
			return err
		}
		for _, ch := range changes {
			var err error
			switch m := ch.(type) {
			case *pglogrepl.InsertMessage:
				err = add(upsert(rels[m.RelationID], m.Tuple))
			case *pglogrepl.UpdateMessage:
				r := rels[m.RelationID]
				if m.OldTuple != nil {
					if err = add(deleteKey(r, m.OldTuple)); err != nil {
						break
					}
				}
				err = add(upsert(r, m.NewTuple))
			case *pglogrepl.DeleteMessage:
				err = add(deleteKey(rels[m.RelationID], m.OldTuple))
			}
			if err != nil {
				return err
			}
		}
		if len(changes) > 0 {
			if _, err := tx.Conn().PgConn().ExecBatch(ctx, batch).ReadAll(); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE shardedapi_move_progress SET applied_lsn = $2, updated_at = now() WHERE move_id = $1`, a.mv.m.ID, end.String())
		return err
	})
	if err != nil {
		return dst.Err(ctx, "apply changes", err)
	}
	a.mu.Lock()
	a.applied = end
	a.rows += int64(len(changes))
	a.mu.Unlock()
	return nil
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// upsert inserts or overwrites a row from a new tuple. Unchanged TOAST
// columns ('u') are not sent; such a row exists already, so it is
// updated without them.
func upsert(r *relation, t *pglogrepl.TupleData) (stmt, error) {
	if r == nil || t == nil {
		return stmt{}, errors.New("change for an unknown relation")
	}
	var cols, sets []string
	var vals [][]byte
	var oids []uint32
	unchanged := false
	for i, c := range t.Columns {
		switch c.DataType {
		case 'u':
			unchanged = true
			continue
		case 'n':
			vals = append(vals, nil)
		default:
			vals = append(vals, c.Data)
		}
		cols = append(cols, quoteIdent(r.cols[i]))
		oids = append(oids, r.oids[i])
		if !slices.Contains(r.key, i) {
			sets = append(sets, quoteIdent(r.cols[i])+" = EXCLUDED."+quoteIdent(r.cols[i]))
		}
	}
	var sql string
	if unchanged {
		var set, where []string
		for i, c := range cols {
			if slices.Contains(r.key, colIndex(r, c)) {
				where = append(where, c+" = $"+strconv.Itoa(i+1))
			} else {
				set = append(set, c+" = $"+strconv.Itoa(i+1))
			}
		}
		sql = `UPDATE ` + quoteIdent(r.name) + ` SET ` + strings.Join(set, ", ") + ` WHERE ` + strings.Join(where, " AND ")
	} else {
		ph := make([]string, len(cols))
		for i := range cols {
			ph[i] = "$" + strconv.Itoa(i+1)
		}
		keys := make([]string, len(r.key))
		for i, k := range r.key {
			keys[i] = quoteIdent(r.cols[k])
		}
		sql = `INSERT INTO ` + quoteIdent(r.name) + ` (` + strings.Join(cols, ", ") + `) VALUES (` + strings.Join(ph, ", ") + `) ON CONFLICT (` + strings.Join(keys, ", ") + `) DO `
		if len(sets) == 0 {
			sql += `NOTHING`
		} else {
			sql += `UPDATE SET ` + strings.Join(sets, ", ")
		}
	}
	return stmt{sql, vals, oids}, nil
}

// stmt is one statement of an applied transaction.
type stmt struct {
	sql  string
	vals [][]byte
	oids []uint32
}

func colIndex(r *relation, quoted string) int {
	for i, c := range r.cols {
		if quoteIdent(c) == quoted {
			return i
		}
	}
	return -1
}

// deleteKey deletes the row named by a key (or full old) tuple.
func deleteKey(r *relation, t *pglogrepl.TupleData) (stmt, error) {
	if r == nil || t == nil {
		return stmt{}, errors.New("delete for an unknown relation or without a key")
	}
	var where []string
	var vals [][]byte
	var oids []uint32
	for _, k := range r.key {
		where = append(where, quoteIdent(r.cols[k])+" = $"+strconv.Itoa(len(vals)+1))
		vals = append(vals, t.Columns[k].Data)
		oids = append(oids, r.oids[k])
	}
	if len(where) == 0 {
		return stmt{}, fmt.Errorf("table %s has no replica identity key", r.name)
	}
	return stmt{`DELETE FROM ` + quoteIdent(r.name) + ` WHERE ` + strings.Join(where, " AND "), vals, oids}, nil
}

// verifyChunks is the number of hash chunks per table.
const verifyChunks = 64

// verifyBucket compares the bucket's rows on src and dst chunk by chunk
// (count and a sum of row hashes per chunk of keys) and returns the
// chunks that differ, as table*verifyChunks+chunk. only limits the check
// to those chunks when restrict is set.
func verifyBucket(ctx context.Context, src, dst *Shard, bucket int, only []int, restrict bool) ([]int, error) {
	if restrict && len(only) == 0 {
		return nil, nil
	}
	type sum struct {
		n int64
		h string
	}
	read := func(sh *Shard) (map[int]sum, error) {
		out := map[int]sum{}
		err := pgx.BeginTxFunc(ctx, sh.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL TimeZone = 'UTC'`); err != nil {
				return err
			}
			for ti, t := range movedTables {
				key := strings.ReplaceAll(t.key, ", ", "::text || '/' || ") + "::text"
				q := `SELECT abs(hashtext(` + key + `)) % ` + strconv.Itoa(verifyChunks) + ` AS chunk, count(*), sum(hashtextextended(x::text, 0)::numeric)::text
					FROM ` + t.name + ` x WHERE ` + fmt.Sprintf(t.filter, bucket)
				args := []any{}
				if restrict {
					var cs []int32
					for _, c := range only {
						if c/verifyChunks == ti {
							cs = append(cs, int32(c%verifyChunks))
						}
					}
					if len(cs) == 0 {
						continue
					}
					q += ` AND abs(hashtext(` + key + `)) % ` + strconv.Itoa(verifyChunks) + ` = ANY($1)`
					args = append(args, cs)
				}
				rows, err := tx.Query(ctx, q+` GROUP BY 1`, args...)
				if err != nil {
					return err
				}
				var chunk int
				var s sum
				if _, err := pgx.ForEachRow(rows, []any{&chunk, &s.n, &s.h}, func() error {
					out[ti*verifyChunks+chunk] = s
					return nil
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, sh.Err(ctx, "hash bucket rows", err)
		}
		return out, nil
	}
	a, err := read(src)
	if err != nil {
		return nil, err
	}
	b, err := read(dst)
	if err != nil {
		return nil, err
	}
	var diff []int
	for k, v := range a {
		if b[k] != v {
			diff = append(diff, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diff = append(diff, k)
		}
	}
	slices.Sort(diff)
	return diff, nil
}
