// Package seed generates the example site's data set (products and users)
// deterministically, so it is never committed as a file, and loads it
// idempotently into a document store.
package seed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/assetctl/assetctl/shardedapi"
)

// Collections the data set fills.
const (
	Products = "products"
	Users    = "users"
)

// Options size the data set. The zero value is the example's: 3,000
// products and 2,000 users.
type Options struct {
	// Products is how many products to make (default 3000).
	Products int
	// Users is how many users to make (default 2000).
	Users int
	// Concurrency bounds parallel writes (default 16).
	Concurrency int
}

func (o Options) withDefaults() Options {
	if o.Products == 0 {
		o.Products = 3000
	}
	if o.Users == 0 {
		o.Users = 2000
	}
	if o.Concurrency == 0 {
		o.Concurrency = 16
	}
	return o
}

// Store is what Load needs from a document store; *shardedapi.DocumentStore
// implements it.
type Store interface {
	Put(ctx context.Context, collection, id string, body json.RawMessage, cond shardedapi.Precondition) (shardedapi.Document, bool, error)
}

var _ Store = (*shardedapi.DocumentStore)(nil)

// Doc is one generated document.
type Doc struct {
	Collection string
	ID         string
	Body       json.RawMessage
}

// Product is the example's product document.
type Product struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	PriceCents  int      `json:"price_cents"`
	Price       string   `json:"price"` // PriceCents for people: "€12.34"
	Category    string   `json:"category"`
	Tags        []string `json:"tags"`
	Stock       int      `json:"stock"`
}

// User is the example's user document.
type User struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	Bio   string `json:"bio"`
	City  string `json:"city"`
}

// ProductID and UserID are the IDs of the n-th (1-based) generated documents.
func ProductID(n int) string { return fmt.Sprintf("p%05d", n) }

// UserID is the ID of the n-th (1-based) generated user.
func UserID(n int) string { return fmt.Sprintf("u%05d", n) }

var (
	adjectives = []string{"Compact", "Sturdy", "Quiet", "Bright", "Nimble", "Classic", "Modular", "Rugged", "Slim", "Vivid", "Gentle", "Rapid"}
	materials  = []string{"Oak", "Steel", "Linen", "Ceramic", "Walnut", "Copper", "Wool", "Bamboo", "Glass", "Cork"}
	things     = []string{"Lamp", "Kettle", "Desk", "Backpack", "Chair", "Mug", "Notebook", "Speaker", "Clock", "Shelf", "Blanket", "Planter"}
	categories = []string{"home", "kitchen", "office", "outdoor", "audio", "decor"}
	tags       = []string{"new", "bestseller", "eco", "handmade", "limited", "gift", "sale"}
	firsts     = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Donald", "Radia", "Leslie", "Hedy", "John", "Sophie", "Tim"}
	lasts      = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen", "Knuth", "Perlman", "Lamport", "Lamarr", "Backus", "Wilson", "Berners"}
	cities     = []string{"Lisbon", "Osaka", "Nairobi", "Oslo", "Quito", "Perth", "Tallinn", "Montréal", "Pune", "Graz"}
)

// Generate returns the whole data set, the same for the same options on
// every run and machine: products first, then users.
func Generate(o Options) []Doc {
	o = o.withDefaults()
	r := rand.New(rand.NewPCG(8, 2026)) // fixed seed: the data set is part of the example
	docs := make([]Doc, 0, o.Products+o.Users)
	for n := 1; n <= o.Products; n++ {
		p := Product{
			Name:       fmt.Sprintf("%s %s %s", pick(r, adjectives), pick(r, materials), pick(r, things)),
			PriceCents: 500 + r.IntN(49500),
			Category:   pick(r, categories),
			Stock:      r.IntN(200),
		}
		p.Price = fmt.Sprintf("€%d.%02d", p.PriceCents/100, p.PriceCents%100)
		p.Description = fmt.Sprintf("A %s %s for every day, made of %s. Item %d of the example catalogue.",
			strings.ToLower(pick(r, adjectives)), strings.ToLower(p.Name[strings.LastIndexByte(p.Name, ' ')+1:]), strings.ToLower(pick(r, materials)), n)
		for _, t := range tags {
			if r.IntN(5) == 0 {
				p.Tags = append(p.Tags, t)
			}
		}
		if p.Tags == nil {
			p.Tags = []string{}
		}
		docs = append(docs, Doc{Products, ProductID(n), mustJSON(p)})
	}
	for n := 1; n <= o.Users; n++ {
		first, last := pick(r, firsts), pick(r, lasts)
		u := User{
			Name:  first + " " + last,
			Email: fmt.Sprintf("%s.%s.%d@example.com", strings.ToLower(first), strings.ToLower(last), n),
			City:  pick(r, cities),
		}
		u.Bio = fmt.Sprintf("%s lives in %s and has been a member since user number %d.", first, u.City, n)
		docs = append(docs, Doc{Users, UserID(n), mustJSON(u)})
	}
	return docs
}

// Result counts what Load did.
type Result struct {
	Created int // documents written
	Present int // documents already there, left as they were
}

// Load writes every generated document that is not there yet (If-None-Match:
// *), so running it again writes nothing and never overwrites an edit.
func Load(ctx context.Context, s Store, o Options) (Result, error) {
	o = o.withDefaults()
	var created, present atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for _, d := range Generate(o) {
		g.Go(func() error {
			_, _, err := s.Put(ctx, d.Collection, d.ID, d.Body, shardedapi.Precondition{IfAbsent: true})
			switch {
			case err == nil:
				created.Add(1)
			case errors.Is(err, shardedapi.ErrPreconditionFailed):
				present.Add(1)
			default:
				return fmt.Errorf("seed %s/%s: %w", d.Collection, d.ID, err)
			}
			return nil
		})
	}
	err := g.Wait()
	return Result{Created: int(created.Load()), Present: int(present.Load())}, err
}

func pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and ints always encode
	}
	return b
}
