-- The write fence of bucket moves (fence.go, move.go). A bucket without a
-- row here is owned by whichever shard the catalog's map names; a move
-- marks its target "incoming" until cutover and its source "moved" from
-- cutover on, so a process holding a stale map cannot write (or read) the
-- bucket on a shard that no longer owns it.
--
-- move_progress is the position up to which a move's change stream has
-- been applied on this (target) shard, committed in the same transaction
-- as the applied changes.
--
-- documents gets a replica identity that includes bucket, so the bucket
-- publication's row filter (WHERE bucket = N) may cover UPDATE and DELETE.

-- +goose Up
CREATE TABLE shardedapi_bucket_owner (
    bucket     integer PRIMARY KEY,
    state      text NOT NULL CHECK (state IN ('owned', 'incoming', 'moved')),
    move_id    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shardedapi_move_progress (
    move_id     bigint PRIMARY KEY,
    applied_lsn pg_lsn NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX documents_identity ON documents (collection, id, bucket);
ALTER TABLE documents REPLICA IDENTITY USING INDEX documents_identity;

-- +goose Down
ALTER TABLE documents REPLICA IDENTITY DEFAULT;
DROP INDEX documents_identity;
DROP TABLE shardedapi_move_progress;
DROP TABLE shardedapi_bucket_owner;
