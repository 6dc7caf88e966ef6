package shardedapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/assetctl/assetctl/shardedapi"
	"github.com/jackc/pgx/v5"
)

// exampleDatabases creates a catalog and three shard databases with unique
// names on the machine's PostgreSQL (127.0.0.1:5432, user postgres) and
// returns their Options and a function that drops them.
func exampleDatabases() (shardedapi.Options, func()) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:5432/postgres")
	if err != nil {
		log.Fatalf("the examples need PostgreSQL at 127.0.0.1:5432: %v", err)
	}
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	suffix := hex.EncodeToString(b)
	var names []string
	create := func(name string) string {
		name = "shardedapi_example_" + name + "_" + suffix
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			log.Fatal(err)
		}
		names = append(names, name)
		return "postgres://postgres@127.0.0.1:5432/" + name
	}
	opts := shardedapi.Options{CatalogDSN: create("catalog")}
	for _, s := range []string{"s0", "s1", "s2"} {
		opts.Shards = append(opts.Shards, shardedapi.ShardConfig{Name: s, DSN: create(s)})
	}
	return opts, func() {
		for _, n := range names {
			_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+n+" WITH (FORCE)")
		}
		admin.Close(ctx)
	}
}

// The whole life of a sharded dataset: migrate every database, write the
// layout and first bucket map once, open, then write and read users on the
// shard of their bucket.
func Example() {
	ctx := context.Background()
	opts, drop := exampleDatabases()
	defer drop()

	if err := shardedapi.Migrate(ctx, opts); err != nil {
		log.Fatal(err)
	}
	if err := shardedapi.Bootstrap(ctx, opts, shardedapi.Layout{}); err != nil { // 1024 buckets over s0..s2
		log.Fatal(err)
	}
	cluster, err := shardedapi.Open(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()

	store := shardedapi.NewStore(cluster, shardedapi.StoreOptions{}) // add Cache: to read through Redis
	ada, err := store.CreateUser(ctx, shardedapi.NewUser{Email: "ada@example.com", Name: "Ada"})
	if err != nil {
		log.Fatal(err)
	}
	_, err = store.CreateUser(ctx, shardedapi.NewUser{Email: "ADA@example.com", Name: "Impostor"})
	fmt.Println("second ada@example.com:", errors.Is(err, shardedapi.ErrTaken))

	got, err := store.User(ctx, ada.ID)
	if err != nil {
		log.Fatal(err)
	}
	loc, _ := cluster.LocateID(ada.ID)
	byKey, _ := cluster.Locate(shardedapi.Key{ID: "ada@example.com"})
	fmt.Println("read back:", got.Name)
	fmt.Println("the ID names the bucket of the email:", loc.Bucket == byKey.Bucket, "on map version", loc.MapVersion)
	// Output:
	// second ada@example.com: true
	// read back: Ada
	// the ID names the bucket of the email: true on map version 1
}

// A global ID carries its creation time and bucket: the shard of any row is
// known from its ID alone.
func ExampleID() {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	id, _ := shardedapi.MakeID(at, 617, 3)
	parsed, _ := shardedapi.ParseID(id.String())
	fmt.Println(parsed.Time().Format(time.RFC3339), parsed.Bucket(), parsed.Seq())
	// Output: 2026-03-01T12:00:00Z 617 3
}

// Scatter-gather over every shard with a per-shard timeout; a shard that
// does not answer flags the result as partial instead of silently
// shrinking it.
func ExampleGather() {
	ctx := context.Background()
	opts, drop := exampleDatabases()
	defer drop()
	if err := shardedapi.Migrate(ctx, opts); err != nil {
		log.Fatal(err)
	}
	if err := shardedapi.Bootstrap(ctx, opts, shardedapi.Layout{}); err != nil {
		log.Fatal(err)
	}
	cluster, err := shardedapi.Open(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()

	g, err := shardedapi.Gather(ctx, cluster, shardedapi.GatherOptions{PerShardTimeout: 5 * time.Second},
		func(ctx context.Context, s *shardedapi.Shard) ([]string, error) {
			var db string
			err := s.Pool().QueryRow(ctx, `SELECT current_database()`).Scan(&db)
			return []string{s.Name()}, err
		})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(g.Items, "partial:", g.Partial)
	// Output: [s0 s1 s2] partial: false
}

// The hotspot report: rows, reads and writes per shard and per bucket, as
// the CLI prints it with WriteText.
func ExampleCluster_Hotspots() {
	ctx := context.Background()
	opts, drop := exampleDatabases()
	defer drop()
	if err := shardedapi.Migrate(ctx, opts); err != nil {
		log.Fatal(err)
	}
	if err := shardedapi.Bootstrap(ctx, opts, shardedapi.Layout{Buckets: 64}); err != nil {
		log.Fatal(err)
	}
	cluster, err := shardedapi.Open(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	store := shardedapi.NewStore(cluster, shardedapi.StoreOptions{})
	var first shardedapi.User
	for i := range 30 {
		u, err := store.CreateUser(ctx, shardedapi.NewUser{Email: fmt.Sprintf("user%d@example.com", i)})
		if err != nil {
			log.Fatal(err)
		}
		if i == 0 {
			first = u
		}
	}
	for range 10 {
		if _, err := store.User(ctx, first.ID); err != nil {
			log.Fatal(err)
		}
	}
	report, err := cluster.Hotspots(ctx, shardedapi.HotspotOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range report.Shards {
		fmt.Printf("%s: %d buckets, %d rows, %d writes\n", s.Shard, s.Buckets, s.Rows, s.Writes)
	}
	hottest := report.HottestBuckets(1)[0]
	// report.WriteText(os.Stdout, 10) prints all of it as aligned tables.
	fmt.Println("hottest bucket holds user0:", hottest.Bucket == first.ID.Bucket(), "reads:", hottest.Reads)
	// Output:
	// s0: 22 buckets, 12 rows, 12 writes
	// s1: 21 buckets, 9 rows, 9 writes
	// s2: 21 buckets, 9 rows, 9 writes
	// hottest bucket holds user0: true reads: 10
}
