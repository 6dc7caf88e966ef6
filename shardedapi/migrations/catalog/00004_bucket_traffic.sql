-- Reads and writes per bucket, summed over every process that flushes its
-- counters (traffic.go), for `assetctl shards status` and rebalancing by
-- traffic.

-- +goose Up
CREATE TABLE bucket_traffic (
    bucket     integer PRIMARY KEY,
    reads      bigint NOT NULL DEFAULT 0,
    writes     bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE bucket_traffic;
