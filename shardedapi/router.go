package shardedapi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// routingTable is one immutable snapshot of the catalog's routing state;
// Refresh swaps in a new one atomically.
type routingTable struct {
	version   int64
	buckets   int
	strategy  Strategy
	regions   map[string]regionRange
	ranges    map[string][]RangeRule // per region, sorted by From
	directory map[Key]int
	shardOf   []*Shard // bucket → shard
}

func (t *routingTable) regionNames() string {
	names := make([]string, 0, len(t.regions))
	for n := range t.regions {
		names = append(names, strconv.Quote(n))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Location is where a key or ID lives under the current bucket map.
type Location struct {
	Bucket     int    // the virtual bucket: fixed for the life of the key
	Shard      *Shard // the shard that owns the bucket under MapVersion
	MapVersion int64  // the bucket map version used
}

// Locate routes a shard key: key → bucket (by the dataset's strategy, or
// its directory entry) → shard (by the bucket map). It does no I/O.
func (c *Cluster) Locate(k Key) (Location, error) {
	if err := k.validate(); err != nil {
		return Location{}, err
	}
	t := c.table.Load()
	b, err := t.bucketFor(k)
	if err != nil {
		return Location{}, err
	}
	return Location{Bucket: b, Shard: t.shardOf[b], MapVersion: t.version}, nil
}

// LocateID routes a global ID by the bucket it embeds, without a lookup.
func (c *Cluster) LocateID(id ID) (Location, error) {
	t := c.table.Load()
	if id <= 0 || id.Bucket() >= t.buckets {
		return Location{}, fmt.Errorf("locate id %d: %w: bucket %d outside this dataset's %d buckets", int64(id), ErrInvalidID, id.Bucket(), t.buckets)
	}
	b := id.Bucket()
	return Location{Bucket: b, Shard: t.shardOf[b], MapVersion: t.version}, nil
}

// ShardOfBucket is the shard that owns bucket b under the current map.
func (c *Cluster) ShardOfBucket(b int) (*Shard, error) {
	t := c.table.Load()
	if b < 0 || b >= t.buckets {
		return nil, fmt.Errorf("locate bucket %d: %w: outside this dataset's %d buckets", b, ErrInvalidID, t.buckets)
	}
	return t.shardOf[b], nil
}

// bucketStats counts reads and writes per bucket for the hotspot report.
type bucketStats struct {
	reads  []atomic.Int64
	writes []atomic.Int64
}

func newBucketStats(buckets int) *bucketStats {
	return &bucketStats{reads: make([]atomic.Int64, buckets), writes: make([]atomic.Int64, buckets)}
}

// CountRead records a read of a row in bucket b for the hotspot report.
// Store calls it; call it from your own entities' reads too.
func (c *Cluster) CountRead(b int) {
	if b >= 0 && b < len(c.stats.reads) {
		c.stats.reads[b].Add(1)
	}
}

// CountWrite records a committed write to a row in bucket b for the
// hotspot report.
func (c *Cluster) CountWrite(b int) {
	if b >= 0 && b < len(c.stats.writes) {
		c.stats.writes[b].Add(1)
	}
}
