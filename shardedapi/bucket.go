package shardedapi

import (
	"fmt"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
)

// DefaultBuckets is the number of virtual buckets of a dataset whose
// Layout leaves Buckets zero.
const DefaultBuckets = 1024

// MaxBuckets is the most buckets a dataset can have: a global ID keeps the
// bucket in 12 bits.
const MaxBuckets = 1 << idBucketBits

// MaxKeyLen is the longest shard key ID accepted, in bytes.
const MaxKeyLen = 512

// Key is a shard key: the value that decides where a row lives. Region
// pins the key to the shards of one region (data residency); leave it
// empty in a dataset without regions.
type Key struct {
	Region string // e.g. "eu"; "" is the default region
	ID     string // e.g. a tenant, an email, a product handle
}

func (k Key) String() string {
	if k.Region == "" {
		return k.ID
	}
	return k.Region + "/" + k.ID
}

// validate checks what can be checked without the catalog.
func (k Key) validate() error {
	switch {
	case k.ID == "":
		return fmt.Errorf("route key %q: %w: the key ID is empty", k.String(), ErrInvalidKey)
	case len(k.ID) > MaxKeyLen:
		return fmt.Errorf("route key of %d bytes: %w: longer than %d bytes", len(k.ID), ErrInvalidKey, MaxKeyLen)
	case !utf8.ValidString(k.ID) || !utf8.ValidString(k.Region):
		return fmt.Errorf("route key %q: %w: not valid UTF-8", k.String(), ErrInvalidKey)
	}
	return nil
}

// HashBucket is the hash strategy's key → bucket function: XXH64 of the
// key's bytes modulo the number of buckets. It must never change for a
// dataset (invariant 6), which is why it is a fixed, specified hash and not
// Go's seeded maphash.
func HashBucket(id string, buckets int) int {
	return int(xxhash.Sum64String(id) % uint64(buckets))
}

// Strategy chooses how a key's ID becomes a bucket inside its region's
// bucket range. A directory entry (Cluster.Assign) overrides any strategy.
type Strategy string

// The key → bucket strategies of the seed's pattern 17.
const (
	// StrategyHash spreads keys evenly over the region's buckets (the default).
	StrategyHash Strategy = ""
	// StrategyRange sends ordered key ranges to chosen buckets (Layout.Ranges).
	StrategyRange Strategy = "range"
)

// Layout is the fixed shape of a dataset, written to the catalog once by
// Bootstrap: it must not change for the life of the data, because it
// decides every key's bucket.
type Layout struct {
	// Buckets is the number of virtual buckets. Default DefaultBuckets;
	// at most MaxBuckets.
	Buckets int
	// Strategy is the key → bucket strategy. Default StrategyHash.
	Strategy Strategy
	// Ranges are the range strategy's rules (ignored for StrategyHash).
	// Within a region, a key goes to the bucket of the rule with the
	// greatest From that is <= the key (byte order); each region needs a
	// rule with From "".
	Ranges []RangeRule
	// Regions split the buckets between data-residency regions, in order:
	// the first region gets the first Buckets buckets, and so on. Default:
	// one region "" holding all buckets, spread over every shard.
	Regions []Region
}

// RangeRule sends the keys of Region from From (inclusive) up to the next
// rule's From (exclusive) to Bucket, a bucket of that region.
type RangeRule struct {
	Region string
	From   string
	Bucket int
}

// Region is a group of shards that a key's data may live on.
type Region struct {
	Name    string   // "" is the region of keys without one
	Buckets int      // how many buckets the region owns (they sum to Layout.Buckets)
	Shards  []string // the shards its buckets are spread over at Bootstrap
}

// regionRange is a region's slice of the bucket space.
type regionRange struct {
	first, count int
}

// bucketFor maps a validated key to its bucket using the table's layout.
func (t *routingTable) bucketFor(k Key) (int, error) {
	rr, ok := t.regions[k.Region]
	if !ok {
		return 0, fmt.Errorf("route key %q: %w: unknown region %q (the catalog defines %s)", k.String(), ErrInvalidKey, k.Region, t.regionNames())
	}
	if len(t.directory) > 0 {
		if b, ok := t.directory[k]; ok {
			return b, nil
		}
	}
	if t.strategy == StrategyRange {
		rules := t.ranges[k.Region]
		// rules are sorted by From; find the last one <= key.
		lo, hi := 0, len(rules)
		for lo < hi {
			mid := (lo + hi) / 2
			if rules[mid].From <= k.ID {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		if lo == 0 {
			return 0, fmt.Errorf("route key %q: %w: no range rule covers it", k.String(), ErrInvalidKey)
		}
		return rules[lo-1].Bucket, nil
	}
	return rr.first + HashBucket(k.ID, rr.count), nil
}
