package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func sagaKinds() map[string]SagaDefinition {
	return map[string]SagaDefinition{CreditTransferKind: CreditTransferSaga}
}

// usersOnTwoShards creates n users with balance each, spread over the
// shards by their emails' hash.
func usersOnTwoShards(t *testing.T, tc *testCluster, n int, balance int64) []ID {
	t.Helper()
	ctx := context.Background()
	var ids []ID
	for i := 0; len(ids) < n; i++ {
		u, err := tc.Store.CreateUser(ctx, NewUser{Email: fmt.Sprintf("saga%d@example.com", i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.Cluster.BucketTx(ctx, u.ID.Bucket(), func(ctx context.Context, tx pgx.Tx, _ *Shard) error {
			_, err := tx.Exec(ctx, `UPDATE users SET balance = $2 WHERE id = $1`, int64(u.ID), balance)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	return ids
}

func totalBalance(t *testing.T, tc *testCluster) int64 {
	t.Helper()
	var sum int64
	for _, s := range tc.Cluster.Shards() {
		var n int64
		if err := s.Pool().QueryRow(context.Background(), `SELECT coalesce(sum(balance), 0)::bigint FROM users`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		sum += n
	}
	return sum
}

func balanceOf(t *testing.T, tc *testCluster, id ID) int64 {
	t.Helper()
	loc, _ := tc.Cluster.LocateID(id)
	var n int64
	if err := loc.Shard.Pool().QueryRow(context.Background(), `SELECT balance FROM users WHERE id = $1`, int64(id)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSagaCreditTransfers: concurrent transfers between users on
// different shards keep the total; an overdraft is refused and changes
// nothing.
func TestSagaCreditTransfers(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Shards: 2})
	ctx := context.Background()
	ids := usersOnTwoShards(t, tc, 6, 100)
	r := NewSagaRunner(tc.Cluster, sagaKinds(), SagaOptions{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var unexpected []error
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				from, to := ids[(g+i)%len(ids)], ids[(g+i+1)%len(ids)]
				err := r.TransferCredit(ctx, from, to, int64(1+i%7))
				if err != nil && !errors.Is(err, ErrInsufficientCredit) {
					mu.Lock()
					unexpected = append(unexpected, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, err := range unexpected {
		t.Errorf("transfer: %v", err)
	}
	if got := totalBalance(t, tc); got != 600 {
		t.Errorf("total balance after 100 transfers: got %d, want 600", got)
	}
	before := balanceOf(t, tc, ids[0])
	err := r.TransferCredit(ctx, ids[0], ids[1], before+1)
	if !errors.Is(err, ErrInsufficientCredit) || !errors.Is(err, ErrSagaAborted) {
		t.Errorf("overdraft: got %v, want ErrSagaAborted wrapping ErrInsufficientCredit", err)
	}
	if got := balanceOf(t, tc, ids[0]); got != before {
		t.Errorf("payer after a refused transfer: got %d, want %d", got, before)
	}
}

// TestSagaCompensatesAFailedStep: a payee that does not exist fails the
// second step, and the payer's debit is refunded.
func TestSagaCompensatesAFailedStep(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Shards: 2})
	ctx := context.Background()
	ids := usersOnTwoShards(t, tc, 1, 50)
	ghost, _ := MakeID(time.Now(), 5, 1)
	r := NewSagaRunner(tc.Cluster, sagaKinds(), SagaOptions{})
	err := r.TransferCredit(ctx, ids[0], ghost, 20)
	if !errors.Is(err, ErrSagaAborted) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("transfer to nobody: got %v, want ErrSagaAborted wrapping ErrNotFound", err)
	}
	if got := balanceOf(t, tc, ids[0]); got != 50 {
		t.Errorf("payer after compensation: got %d, want 50", got)
	}
}

// TestSagaRecoversAnAbandonedSaga: a process that stops after the debit
// leaves the saga to Recover in another process, which finishes it once;
// recovering again does nothing.
func TestSagaRecoversAnAbandonedSaga(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Shards: 2})
	ctx := context.Background()
	ids := usersOnTwoShards(t, tc, 2, 100)
	stopped := errors.New("process died")
	dying := NewSagaRunner(tc.Cluster, sagaKinds(), SagaOptions{Lease: 200 * time.Millisecond, hook: func(p string) error {
		if p == "step 1" {
			return stopped
		}
		return nil
	}})
	if err := dying.TransferCredit(ctx, ids[0], ids[1], 30); !errors.Is(err, stopped) {
		t.Fatalf("abandoned transfer: got %v", err)
	}
	if got := totalBalance(t, tc); got != 170 {
		t.Fatalf("mid-saga total: got %d, want 170 (30 in flight)", got)
	}
	time.Sleep(300 * time.Millisecond) // the lease runs out
	other := NewSagaRunner(tc.Cluster, sagaKinds(), SagaOptions{})
	n, err := other.Recover(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Recover: %d, %v; want 1 saga", n, err)
	}
	if a, b := balanceOf(t, tc, ids[0]), balanceOf(t, tc, ids[1]); a != 70 || b != 130 {
		t.Errorf("after recovery: balances %d, %d; want 70, 130", a, b)
	}
	if n, err := other.Recover(ctx); err != nil || n != 0 {
		t.Errorf("second Recover: %d, %v; want nothing to do", n, err)
	}
}

// TestSagaBarrierBlocksLateAction: a compensation that arrives before its
// action (the action's outcome was unknown) records the barrier, and the
// late action then does nothing; a repeated action runs once.
func TestSagaBarrierBlocksLateAction(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, testClusterConfig{Shards: 2})
	ctx := context.Background()
	ids := usersOnTwoShards(t, tc, 2, 100)
	r := NewSagaRunner(tc.Cluster, sagaKinds(), SagaOptions{})
	steps, _ := CreditTransferSaga([]byte(fmt.Sprintf(`{"From":%d,"To":%d,"Amount":10}`, ids[0], ids[1])))
	if err := r.barrierTx(ctx, 999, 0, steps[0], "compensation"); err != nil {
		t.Fatal(err)
	}
	if err := r.barrierTx(ctx, 999, 0, steps[0], "action"); err != nil {
		t.Fatal(err)
	}
	if got := balanceOf(t, tc, ids[0]); got != 100 {
		t.Errorf("late action after its compensation: balance %d, want 100 (untouched)", got)
	}
	for range 2 {
		if err := r.barrierTx(ctx, 1000, 0, steps[0], "action"); err != nil {
			t.Fatal(err)
		}
	}
	if got := balanceOf(t, tc, ids[0]); got != 90 {
		t.Errorf("an action run twice: balance %d, want 90 (debited once)", got)
	}
}

// TestSagaTransfersDuringBucketMoves: transfers between users of two
// buckets run while both buckets move back and forth; no transfer fails
// for the move, the total never changes once all finished, and the
// barrier rows moved with their buckets.
func TestSagaTransfersDuringBucketMoves(t *testing.T) {
	t.Parallel()
	mc := newMoveCluster(t, 2, Layout{})
	ctx := context.Background()
	const b1, b2 = 50, 51
	pc := mc.open(t)
	store := NewStore(pc, StoreOptions{})
	var ids []ID
	for _, b := range []int{b1, b2} {
		for _, e := range emailsInBucket(pc, b, 3, fmt.Sprintf("bank%d-", b)) {
			u, err := store.CreateUser(ctx, NewUser{Email: e})
			if err != nil {
				t.Fatal(err)
			}
			if err := pc.BucketTx(ctx, b, func(ctx context.Context, tx pgx.Tx, _ *Shard) error {
				_, err := tx.Exec(ctx, `UPDATE users SET balance = 100 WHERE id = $1`, int64(u.ID))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, u.ID)
		}
	}
	r := NewSagaRunner(pc, sagaKinds(), SagaOptions{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var unexpected []error
	done := 0
	for g := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				from, to := ids[(g+i)%len(ids)], ids[(g+i+3)%len(ids)] // always across the two buckets
				err := r.TransferCredit(ctx, from, to, int64(1+i%5))
				mu.Lock()
				if err != nil && !errors.Is(err, ErrInsufficientCredit) {
					unexpected = append(unexpected, err)
				} else if err == nil {
					done++
				}
				mu.Unlock()
			}
		})
	}
	for round := range 2 {
		for _, b := range []int{b1, b2} {
			if _, err := mc.c.MoveBucket(ctx, b, mc.otherShard(t, b), MoveOptions{Grace: -1}); err != nil {
				t.Fatalf("round %d, move bucket %d: %v", round, b, err)
			}
		}
	}
	close(stop)
	wg.Wait()
	for _, err := range unexpected {
		t.Errorf("transfer during moves: %v", err)
	}
	var sum int64
	barriers := 0
	for _, s := range mc.c.Shards() {
		var n int64
		var nb int
		if err := s.Pool().QueryRow(ctx, `SELECT coalesce(sum(balance), 0)::bigint FROM users`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM shardedapi_saga_barrier`).Scan(&nb); err != nil {
			t.Fatal(err)
		}
		sum += n
		barriers += nb
	}
	if sum != 600 {
		t.Errorf("total balance after %d transfers during 4 moves: got %d, want 600", done, sum)
	}
	if barriers < 2*done {
		t.Errorf("barrier rows: got %d, want at least 2 per completed transfer (%d)", barriers, 2*done)
	}
	t.Logf("%d transfers completed during 4 bucket moves", done)
}
