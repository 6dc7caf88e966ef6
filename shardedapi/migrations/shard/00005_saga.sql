-- Sagas (saga.go): the per-shard barrier rows that make each step and
-- each compensation run at most once, and a compensation arriving before
-- its action a no-op that also blocks the late action. They carry the
-- bucket of the step's rows, so they move with the bucket (the replica
-- identity includes it for the move's row filter). users.balance is the
-- credit-transfer example's account.

-- +goose Up
CREATE TABLE shardedapi_saga_barrier (
    saga_id    bigint NOT NULL,
    step       integer NOT NULL,
    op         text NOT NULL CHECK (op IN ('action', 'compensation')),
    bucket     integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (saga_id, step, op)
);
CREATE UNIQUE INDEX shardedapi_saga_barrier_identity ON shardedapi_saga_barrier (saga_id, step, op, bucket);
ALTER TABLE shardedapi_saga_barrier REPLICA IDENTITY USING INDEX shardedapi_saga_barrier_identity;
CREATE INDEX shardedapi_saga_barrier_bucket ON shardedapi_saga_barrier (bucket);

ALTER TABLE users ADD COLUMN balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0);

-- +goose Down
ALTER TABLE users DROP COLUMN balance;
DROP TABLE shardedapi_saga_barrier;
