package shardedapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// A saga is a multi-step operation across shards without a cross-shard
// transaction: each step is one local transaction on its bucket's shard
// (behind the bucket's write fence), recorded in the catalog's saga log;
// if a step fails for good, the steps already done are compensated in
// reverse order. Every step and compensation inserts a barrier row in
// the same local transaction, so a retried step runs once, and a
// compensation that arrives before its action (a step whose outcome was
// unknown) marks the action done-and-undone so a late action does
// nothing. A process that dies mid-saga leaves its lease to expire;
// SagaRunner.Recover in any process finishes or compensates it.

// ErrSagaAborted wraps the error of a saga step that failed for good
// (a business refusal): the saga was compensated.
var ErrSagaAborted = errors.New("shardedapi: saga aborted and compensated")

// SagaStep is one step of a saga: Action and Compensate each run in a
// transaction on the shard that owns Bucket. Compensate must undo Action
// and must not fail for a business reason (it is retried until it
// commits).
type SagaStep struct {
	Bucket     int
	Action     func(ctx context.Context, tx pgx.Tx) error
	Compensate func(ctx context.Context, tx pgx.Tx) error
}

// SagaDefinition builds a saga's steps from its payload, the same way in
// every process, so any process can recover it.
type SagaDefinition func(payload []byte) ([]SagaStep, error)

// SagaOptions configure a SagaRunner. The zero value is the default.
type SagaOptions struct {
	// Lease is how long a saga's lease lasts; a process that dies mid-saga
	// delays its recovery by at most this. Default 30s.
	Lease time.Duration

	// hook, in tests, runs before each step ("step N") and compensation
	// ("compensate N") and may stop the saga there.
	hook func(point string) error
}

// SagaRunner runs sagas of the kinds registered with it.
type SagaRunner struct {
	c     *Cluster
	opts  SagaOptions
	kinds map[string]SagaDefinition
	me    string
}

// NewSagaRunner makes a runner for kinds (name → definition). Every
// process that may recover a kind must register the same definition.
func NewSagaRunner(c *Cluster, kinds map[string]SagaDefinition, opts SagaOptions) *SagaRunner {
	if opts.Lease <= 0 {
		opts.Lease = 30 * time.Second
	}
	return &SagaRunner{c: c, opts: opts, kinds: kinds, me: leaseOwner()}
}

// Run records a new saga of kind with payload and runs it to the end.
// It returns nil when every step committed, an error wrapping
// ErrSagaAborted (and the step's error) when a step failed and the saga
// was compensated, or another error when the saga could not finish now;
// it is then left to Recover.
func (r *SagaRunner) Run(ctx context.Context, kind string, payload any) (int64, error) {
	def := r.kinds[kind]
	if def == nil {
		return 0, fmt.Errorf("run saga: unknown kind %q: register it with NewSagaRunner", kind)
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return 0, fmt.Errorf("run saga %s: encode payload: %w", kind, err)
	}
	steps, err := def(body)
	if err != nil {
		return 0, fmt.Errorf("run saga %s: %w", kind, err)
	}
	var id int64
	if err := r.c.catalog.QueryRow(ctx, `INSERT INTO sagas (kind, payload, state, lease_owner, lease_until)
		VALUES ($1, $2, 'running', $3, now() + $4::interval) RETURNING id`, kind, body, r.me, r.opts.Lease.String()).Scan(&id); err != nil {
		return 0, fmt.Errorf("run saga %s: record it: %w", kind, err)
	}
	return id, r.drive(ctx, id, "running", 0, steps)
}

// Recover finishes or compensates every saga whose lease expired (its
// process died or gave up) and returns how many it handled.
func (r *SagaRunner) Recover(ctx context.Context) (int, error) {
	n := 0
	for {
		var (
			id          int64
			kind, state string
			payload     []byte
			step        int
		)
		err := r.c.catalog.QueryRow(ctx, `UPDATE sagas SET lease_owner = $1, lease_until = now() + $2::interval, updated_at = now()
			WHERE id = (SELECT id FROM sagas WHERE state IN ('running', 'compensating') AND (lease_until IS NULL OR lease_until < now())
				ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING id, kind, state, payload, step`, r.me, r.opts.Lease.String()).Scan(&id, &kind, &state, &payload, &step)
		if errors.Is(err, pgx.ErrNoRows) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("recover sagas: %w", err)
		}
		def := r.kinds[kind]
		if def == nil {
			return n, fmt.Errorf("recover saga %d: unknown kind %q: register it in this process", id, kind)
		}
		steps, err := def(payload)
		if err != nil {
			return n, fmt.Errorf("recover saga %d: %w", id, err)
		}
		if err := r.drive(ctx, id, state, step, steps); err != nil && !errors.Is(err, ErrSagaAborted) {
			return n, fmt.Errorf("recover saga %d: %w", id, err)
		}
		n++
	}
}

func (r *SagaRunner) hook(point string) error {
	if r.opts.hook != nil {
		return r.opts.hook(point)
	}
	return nil
}

// drive runs a saga forward from step, or compensates it from step down.
func (r *SagaRunner) drive(ctx context.Context, id int64, state string, step int, steps []SagaStep) error {
	var cause error
	if state == "running" {
		for ; step < len(steps); step++ {
			if err := r.hook(fmt.Sprintf("step %d", step)); err != nil {
				return err
			}
			err := r.barrierTx(ctx, id, step, steps[step], "action")
			if err == nil {
				if err := r.record(ctx, id, "running", step+1, ""); err != nil {
					return err
				}
				continue
			}
			if ctx.Err() != nil || errors.Is(err, ErrShardUnavailable) || errors.Is(err, ErrBucketMoved) {
				return err // the outcome is unknown or retryable: leave it to Recover
			}
			cause = err
			if err := r.record(ctx, id, "compensating", step, err.Error()); err != nil {
				return err
			}
			state = "compensating"
			break
		}
		if state == "running" {
			return r.record(ctx, id, "done", len(steps), "")
		}
	}
	// Compensate from the failed step down: its compensation only records
	// a barrier (null compensation) when its action never committed.
	for ; step >= 0; step-- {
		if step >= len(steps) {
			continue
		}
		if err := r.hook(fmt.Sprintf("compensate %d", step)); err != nil {
			return err
		}
		if err := r.barrierTx(ctx, id, step, steps[step], "compensation"); err != nil {
			return fmt.Errorf("compensate step %d of saga %d (Recover retries it): %w", step, id, err)
		}
		if err := r.record(ctx, id, "compensating", step-1, ""); err != nil {
			return err
		}
	}
	if err := r.record(ctx, id, "compensated", 0, ""); err != nil {
		return err
	}
	if cause == nil {
		cause = errors.New("compensated by recovery")
	}
	return fmt.Errorf("saga %d: %w: %w", id, ErrSagaAborted, cause)
}

// barrierTx runs a step's action or compensation once, in one transaction
// on its bucket's shard with its barrier row.
func (r *SagaRunner) barrierTx(ctx context.Context, id int64, step int, s SagaStep, op string) error {
	return r.c.BucketTx(ctx, s.Bucket, func(ctx context.Context, tx pgx.Tx, _ *Shard) error {
		tag, err := tx.Exec(ctx, `INSERT INTO shardedapi_saga_barrier (saga_id, step, op, bucket) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, id, step, op, s.Bucket)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil // already done
		}
		switch op {
		case "action":
			// A compensation that came first blocks the late action.
			var compensated bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM shardedapi_saga_barrier WHERE saga_id = $1 AND step = $2 AND op = 'compensation')`, id, step).Scan(&compensated); err != nil {
				return err
			}
			if compensated {
				return nil
			}
			return s.Action(ctx, tx)
		default:
			// Null compensation: the action never ran, so there is nothing
			// to undo; the barrier alone blocks it from running later.
			var acted bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM shardedapi_saga_barrier WHERE saga_id = $1 AND step = $2 AND op = 'action')`, id, step).Scan(&acted); err != nil {
				return err
			}
			if !acted {
				return nil
			}
			return s.Compensate(ctx, tx)
		}
	})
}

// record writes a saga's progress if this runner holds its lease.
func (r *SagaRunner) record(ctx context.Context, id int64, state string, step int, msg string) error {
	tag, err := r.c.catalog.Exec(ctx, `UPDATE sagas SET state = $3, step = $4, error = CASE WHEN $5 = '' THEN error ELSE $5 END,
		lease_until = CASE WHEN $3 IN ('done', 'compensated') THEN NULL ELSE now() + $6::interval END, updated_at = now()
		WHERE id = $1 AND lease_owner = $2`, id, r.me, state, step, msg, r.opts.Lease.String())
	if err != nil {
		return fmt.Errorf("record saga %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("record saga %d: another process took over its lease", id)
	}
	return nil
}

// ErrInsufficientCredit means a credit transfer's payer has less than
// the amount; the transfer was not made.
var ErrInsufficientCredit = errors.New("shardedapi: insufficient credit")

// creditTransfer is the payload of the "credit.transfer" saga.
type creditTransfer struct {
	From, To ID
	Amount   int64
}

// CreditTransferSaga is the definition of the example saga
// "credit.transfer": debit the payer on its shard, then credit the payee
// on its shard; if the credit fails, the debit is refunded.
func CreditTransferSaga(payload []byte) ([]SagaStep, error) {
	var t creditTransfer
	if err := json.Unmarshal(payload, &t); err != nil {
		return nil, fmt.Errorf("decode credit transfer: %w", err)
	}
	return []SagaStep{
		{
			Bucket: t.From.Bucket(),
			Action: func(ctx context.Context, tx pgx.Tx) error {
				tag, err := tx.Exec(ctx, `UPDATE users SET balance = balance - $2 WHERE id = $1 AND balance >= $2`, int64(t.From), t.Amount)
				if err == nil && tag.RowsAffected() == 0 {
					return fmt.Errorf("debit user %d: %w (or no such user)", int64(t.From), ErrInsufficientCredit)
				}
				return err
			},
			Compensate: func(ctx context.Context, tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `UPDATE users SET balance = balance + $2 WHERE id = $1`, int64(t.From), t.Amount)
				return err
			},
		},
		{
			Bucket: t.To.Bucket(),
			Action: func(ctx context.Context, tx pgx.Tx) error {
				tag, err := tx.Exec(ctx, `UPDATE users SET balance = balance + $2 WHERE id = $1`, int64(t.To), t.Amount)
				if err == nil && tag.RowsAffected() == 0 {
					return fmt.Errorf("credit user %d: %w", int64(t.To), ErrNotFound)
				}
				return err
			},
			Compensate: func(ctx context.Context, tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `UPDATE users SET balance = balance - $2 WHERE id = $1`, int64(t.To), t.Amount)
				return err
			},
		},
	}, nil
}

// CreditTransferKind is the saga kind of TransferCredit.
const CreditTransferKind = "credit.transfer"

// TransferCredit moves amount of credit from one user to another, on any
// shards, as a "credit.transfer" saga on r (which must have registered
// CreditTransferSaga under CreditTransferKind). ErrInsufficientCredit
// (wrapped in ErrSagaAborted) when the payer has too little.
func (r *SagaRunner) TransferCredit(ctx context.Context, from, to ID, amount int64) error {
	if amount <= 0 {
		return fmt.Errorf("transfer credit: %w: amount %d, want > 0", ErrInvalidValue, amount)
	}
	if from == to {
		return fmt.Errorf("transfer credit: %w: payer and payee are the same user", ErrInvalidValue)
	}
	if _, err := r.Run(ctx, CreditTransferKind, creditTransfer{From: from, To: to, Amount: amount}); err != nil {
		return fmt.Errorf("transfer credit: %w", err)
	}
	return nil
}
