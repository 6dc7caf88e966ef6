-- Online bucket moves (move.go): one row per move, its state machine and
-- its lease. At most one unfinished move per bucket.

-- +goose Up
CREATE TABLE moves (
    id             bigserial PRIMARY KEY,
    bucket         integer NOT NULL,
    source         text NOT NULL,
    target         text NOT NULL,
    state          text NOT NULL CHECK (state IN ('planned', 'copying', 'catching_up', 'cutover', 'cleanup', 'done', 'failed')),
    slot           text NOT NULL DEFAULT '',
    publication    text NOT NULL DEFAULT '',
    lease_owner    text NOT NULL DEFAULT '',
    lease_until    timestamptz,
    consistent_lsn pg_lsn,
    marker_lsn     pg_lsn,
    rows_copied    bigint NOT NULL DEFAULT 0,
    map_version    bigint NOT NULL DEFAULT 0,
    cleanup_after  timestamptz,
    error          text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX moves_one_active ON moves (bucket) WHERE state NOT IN ('done', 'failed');

-- +goose Down
DROP TABLE moves;
