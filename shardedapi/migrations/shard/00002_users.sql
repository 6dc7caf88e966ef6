-- The example entity of Store. bucket is derived from the ID so the
-- hotspot report can count rows per bucket.

-- +goose Up
CREATE TABLE users (
    id         bigint PRIMARY KEY,
    bucket     integer GENERATED ALWAYS AS (((id >> 10) & 4095)::integer) STORED,
    region     text NOT NULL,
    email      text NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_bucket ON users (bucket);

-- +goose Down
DROP TABLE users;
