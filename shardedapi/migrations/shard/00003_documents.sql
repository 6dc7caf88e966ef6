-- DocumentStore's JSON documents. bucket is the bucket of the routing key
-- collection + "/" + id (stored, since a text key does not carry it), so
-- the hotspot report and bucket moves find a bucket's rows. Keys use the
-- "C" collation so every shard orders them bytewise, as the cross-shard
-- merge of List does.

-- +goose Up
CREATE TABLE documents (
    collection text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    bucket     integer NOT NULL,
    body       jsonb NOT NULL CHECK (jsonb_typeof(body) = 'object'),
    rev        bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection, id)
);
CREATE INDEX documents_newest ON documents (collection, created_at DESC, id DESC);
CREATE INDEX documents_bucket ON documents (bucket);

-- +goose Down
DROP TABLE documents;
