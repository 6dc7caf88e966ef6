package shardedapi

import (
	"fmt"
	"strconv"
	"time"
)

// ID is a global row ID in the Instagram scheme: 41 bits of milliseconds
// since IDEpoch, 12 bits of bucket and 10 bits of sequence, in a positive
// int64. IDs sort by creation time (to the millisecond) across all shards,
// and the bucket inside an ID names the row's shard without a lookup.
//
// Shards mint IDs themselves (the SQL function shardedapi_next_id, created
// by Migrate), so processes never need to coordinate.
type ID int64

// IDEpoch is time zero of IDs: 41 bits of milliseconds last until 2094.
var IDEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	idSeqBits    = 10
	idBucketBits = 12
	idTimeBits   = 41
)

// MakeID assembles an ID. It is what shardedapi_next_id computes in SQL;
// use it for tests and for ID range bounds ("rows created after t").
func MakeID(t time.Time, bucket int, seq int) (ID, error) {
	ms := t.Sub(IDEpoch).Milliseconds()
	if ms < 0 || ms >= 1<<idTimeBits {
		return 0, fmt.Errorf("make id for %s: %w: time outside the ID range starting %s", t.UTC().Format(time.RFC3339), ErrInvalidID, IDEpoch.Format(time.RFC3339))
	}
	if bucket < 0 || bucket >= MaxBuckets {
		return 0, fmt.Errorf("make id: %w: bucket %d outside [0, %d)", ErrInvalidID, bucket, MaxBuckets)
	}
	if seq < 0 || seq >= 1<<idSeqBits {
		return 0, fmt.Errorf("make id: %w: sequence %d outside [0, %d)", ErrInvalidID, seq, 1<<idSeqBits)
	}
	return ID(ms<<(idBucketBits+idSeqBits) | int64(bucket)<<idSeqBits | int64(seq)), nil
}

// Time is when the ID was minted, to the millisecond.
func (id ID) Time() time.Time {
	return IDEpoch.Add(time.Duration(int64(id)>>(idBucketBits+idSeqBits)) * time.Millisecond)
}

// Bucket is the virtual bucket of the row, hence of its shard.
func (id ID) Bucket() int { return int(int64(id)>>idSeqBits) & (MaxBuckets - 1) }

// Seq is the sequence number that tells apart IDs minted in the same
// millisecond for the same bucket.
func (id ID) Seq() int { return int(int64(id) & (1<<idSeqBits - 1)) }

// String is the decimal form, as stored and as accepted by ParseID.
func (id ID) String() string { return strconv.FormatInt(int64(id), 10) }

// ParseID reads the decimal form of an ID.
func ParseID(s string) (ID, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("parse id %q: %w: want a positive decimal integer", s, ErrInvalidID)
	}
	return ID(n), nil
}
