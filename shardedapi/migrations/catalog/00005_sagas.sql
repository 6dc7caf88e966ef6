-- The durable saga log (saga.go): one row per saga, its next step and its
-- lease, so an abandoned saga is finished (or compensated) by another
-- process's Recover.

-- +goose Up
CREATE TABLE sagas (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL,
    payload     jsonb NOT NULL,
    state       text NOT NULL CHECK (state IN ('running', 'compensating', 'done', 'compensated')),
    step        integer NOT NULL DEFAULT 0,
    lease_owner text NOT NULL DEFAULT '',
    lease_until timestamptz,
    error       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sagas_unfinished ON sagas (lease_until) WHERE state IN ('running', 'compensating');

-- +goose Down
DROP TABLE sagas;
