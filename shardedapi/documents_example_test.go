package shardedapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/assetctl/assetctl/shardedapi"
)

// JSON documents sharded by collection and ID: conditional writes with
// revisions (the origin's ETags), a merge patch, a field unique across
// shards, and a newest-first list over every shard.
func ExampleDocumentStore() {
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

	docs, err := shardedapi.NewDocumentStore(cluster, shardedapi.DocumentStoreOptions{
		Collections: []shardedapi.CollectionConfig{{Name: "products"}, {Name: "users", Unique: []string{"email"}}},
		// Cache: a *shardedapi.Cache, to read through Redis.
	})
	if err != nil {
		log.Fatal(err)
	}

	lamp, created, err := docs.Put(ctx, "products", "lamp", json.RawMessage(`{"name":"Lamp","price":30}`), shardedapi.Precondition{IfAbsent: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created:", created)

	// A merge patch conditional on the revision we read (HTTP If-Match).
	lamp2, err := docs.Patch(ctx, "products", "lamp", json.RawMessage(`{"price":25,"sale":true}`), shardedapi.Precondition{IfRev: lamp.Rev})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(lamp2.Body)) // as PostgreSQL's jsonb stores it
	_, err = docs.Patch(ctx, "products", "lamp", json.RawMessage(`{"price":20}`), shardedapi.Precondition{IfRev: lamp.Rev})
	fmt.Println("stale rev refused:", errors.Is(err, shardedapi.ErrPreconditionFailed))

	if _, _, err := docs.Put(ctx, "users", "ada", json.RawMessage(`{"email":"ada@example.com"}`), shardedapi.Precondition{}); err != nil {
		log.Fatal(err)
	}
	_, _, err = docs.Put(ctx, "users", "imp", json.RawMessage(`{"email":"ADA@example.com"}`), shardedapi.Precondition{})
	var taken *shardedapi.UniqueFieldError
	if errors.As(err, &taken) {
		fmt.Println("taken:", taken.Field, errors.Is(err, shardedapi.ErrTaken))
	}

	for _, id := range []string{"desk", "chair"} {
		if _, _, err := docs.Put(ctx, "products", id, json.RawMessage(`{"name":"`+id+`"}`), shardedapi.Precondition{}); err != nil {
			log.Fatal(err)
		}
	}
	page, err := docs.List(ctx, "products", 2, "", shardedapi.GatherOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range page.Documents {
		fmt.Println(d.ID)
	}
	page, err = docs.List(ctx, "products", 2, page.Next, shardedapi.GatherOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(page.Documents[0].ID, "last page:", page.Next == "")
	// Output:
	// created: true
	// {"name": "Lamp", "sale": true, "price": 25}
	// stale rev refused: true
	// taken: email true
	// chair
	// desk
	// lamp last page: true
}
