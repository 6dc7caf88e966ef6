package config

import "time"

// Shards is the shards: section of assetctl.yaml, read by `assetctl shards`.
// Its catalog and shard keys are the same as serve's, so one file can give
// both commands the same dataset. Fields tagged flag:"name" feed the flag of
// that name (see Apply).
//
//	shards:
//	  catalog: postgres://app@db0/catalog
//	  shard: [s0=postgres://app@db1/shard_0, s1=postgres://app@db2/shard_1]
//	  grace: 1m
type Shards struct {
	// Catalog is the catalog database's connection string.
	Catalog string `yaml:"catalog" flag:"catalog"`
	// Shard are NAME=DSN pairs, one per shard.
	Shard []string `yaml:"shard" flag:"shard"`
	// Grace is how long a moved bucket's old rows stay on the source after
	// cutover (default 1m): longer than any process's map refresh.
	Grace time.Duration `yaml:"grace" flag:"grace"`
}
