-- The catalog: the dataset's fixed layout, its shards, the versioned
-- bucket -> shard map, directory entries and global uniqueness claims.

-- +goose Up
CREATE TABLE layout (
    id         integer PRIMARY KEY CHECK (id = 1),
    buckets    integer NOT NULL CHECK (buckets > 0),
    strategy   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE regions (
    name         text PRIMARY KEY,
    first_bucket integer NOT NULL,
    buckets      integer NOT NULL CHECK (buckets > 0)
);

CREATE TABLE shards (
    name   text PRIMARY KEY,
    region text NOT NULL REFERENCES regions (name)
);

CREATE TABLE range_rules (
    region     text NOT NULL REFERENCES regions (name),
    from_key   text NOT NULL,
    bucket     integer NOT NULL,
    PRIMARY KEY (region, from_key)
);

CREATE TABLE map_versions (
    version    bigint PRIMARY KEY,
    note       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bucket_map (
    version bigint NOT NULL REFERENCES map_versions (version),
    bucket  integer NOT NULL,
    shard   text NOT NULL,
    PRIMARY KEY (version, bucket)
);

CREATE TABLE directory (
    region     text NOT NULL,
    key        text NOT NULL,
    bucket     integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region, key)
);

CREATE TABLE unique_claims (
    namespace  text NOT NULL,
    value      text NOT NULL,
    owner      bigint NOT NULL,
    committed  boolean NOT NULL DEFAULT false,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, value)
);
CREATE INDEX unique_claims_owner ON unique_claims (owner);

-- +goose Down
DROP TABLE unique_claims;
DROP TABLE directory;
DROP TABLE bucket_map;
DROP TABLE map_versions;
DROP TABLE range_rules;
DROP TABLE shards;
DROP TABLE regions;
DROP TABLE layout;
