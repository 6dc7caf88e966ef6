-- Global IDs (see id.go): 41 bits of ms since 2025-01-01 | 12 bits bucket | 10 bits sequence.

-- +goose Up
CREATE SEQUENCE shardedapi_id_seq;

-- +goose StatementBegin
CREATE FUNCTION shardedapi_next_id(bucket integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ms bigint := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1735689600000;
BEGIN
    IF bucket < 0 OR bucket >= 4096 THEN
        RAISE EXCEPTION 'shardedapi_next_id: bucket % outside [0, 4096)', bucket;
    END IF;
    RETURN (ms << 22) | (bucket::bigint << 10) | (nextval('shardedapi_id_seq') % 1024);
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION shardedapi_next_id(integer);
DROP SEQUENCE shardedapi_id_seq;
