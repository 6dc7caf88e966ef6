package config

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Serve is the serve: section of assetctl.yaml. Fields tagged flag:"name" feed
// the flag of that name (see Apply). Keys are the flag names; collections
// and routes are structured and live in the file only.
//
//	serve:
//	  addr: 127.0.0.1:8080
//	  templates: templates
//	  cdn-url: https://cdn.example.com/site/
//	  manifest: s3://my-bucket/site      # or a build directory: dist
//	  catalog: postgres://app@db0/catalog
//	  shard: [s0=postgres://app@db1/shard_0, s1=postgres://app@db2/shard_1]
//	  redis: 127.0.0.1:6379
//	  collections:
//	    - name: products
//	      public-read: true
//	    - name: users
//	      unique: [email]
//	  routes:
//	    - path: /products/{id}
//	      template: product.html
//	      document: products
//	      cache: {s-maxage: 5m, stale-while-revalidate: 1m, stale-if-error: 1h}
//	    - path: /{$}
//	      template: index.html
//	      list: products
//	      limit: 12
//	      cache: {s-maxage: 1m}
type Serve struct {
	// Addr is the host:port to listen on (default 127.0.0.1:8080).
	Addr string `yaml:"addr" flag:"addr"`
	// Templates is the directory of *.html templates, relative to the site
	// directory (default "templates").
	Templates string `yaml:"templates" flag:"templates"`
	// CDNURL is the base URL the build's assets are served from.
	CDNURL string `yaml:"cdn-url" flag:"cdn-url"`
	// Manifest is where the live manifest comes from: a build directory
	// holding manifest.json, or s3://BUCKET[/PREFIX] where assetctl deploy
	// writes its deploy records.
	Manifest string `yaml:"manifest" flag:"manifest"`
	// Endpoint is an S3-compatible endpoint for an s3:// manifest.
	Endpoint string `yaml:"endpoint" flag:"endpoint"`
	// Region is the bucket's region for an s3:// manifest.
	Region string `yaml:"region" flag:"region"`
	// PollInterval is how often the manifest source is checked for a new
	// build (default 10s).
	PollInterval time.Duration `yaml:"poll-interval" flag:"poll-interval"`
	// Catalog is the catalog database's connection string.
	Catalog string `yaml:"catalog" flag:"catalog"`
	// Shards are NAME=DSN pairs, one per shard.
	Shards []string `yaml:"shard" flag:"shard"`
	// Redis is the cache's host:port; empty runs without a cache.
	Redis string `yaml:"redis" flag:"redis"`
	// L1 turns the in-process cache tier on (default off).
	L1 *bool `yaml:"l1" flag:"l1"`
	// CachePrefix starts this site's Redis keys, so sites can share a
	// Redis (default "assetctl:serve:").
	CachePrefix string `yaml:"cache-prefix" flag:"cache-prefix"`
	// CacheOpTimeout bounds each Redis operation of the cache (default
	// 250ms); past it a read goes to the shard, and repeated timeouts open
	// the circuit breaker.
	CacheOpTimeout time.Duration `yaml:"cache-op-timeout" flag:"cache-op-timeout"`
	// CacheTTL is how long a cached document is fresh (default 5m).
	CacheTTL time.Duration `yaml:"cache-ttl" flag:"cache-ttl"`
	// Token is the bearer token writes (and private reads) need.
	Token string `yaml:"token" flag:"token"`
	// TokenFile is a file holding the token (for secrets mounted as files).
	TokenFile string `yaml:"token-file" flag:"token-file"`
	// Purge are edge purge base URLs (Varnish xkey) told about written documents.
	Purge []string `yaml:"purge" flag:"purge"`
	// CORSOrigin are the origins allowed to call the API from a browser
	// (default none: CORS off).
	CORSOrigin []string `yaml:"cors-origin" flag:"cors-origin"`
	// DrainDelay is how long /readyz answers 503 on SIGTERM before the
	// server stops accepting connections (default 0).
	DrainDelay time.Duration `yaml:"drain-delay" flag:"drain-delay"`
	// TLSCert and TLSKey serve HTTPS (and HTTP/2) when both are set.
	TLSCert string `yaml:"tls-cert" flag:"tls-cert"`
	TLSKey  string `yaml:"tls-key" flag:"tls-key"`

	// Collections are the document collections the site keeps.
	Collections []Collection `yaml:"collections"`
	// Routes map URL patterns to templates and the documents they show.
	Routes []Route `yaml:"routes"`
}

// Collection is one collection of JSON documents.
type Collection struct {
	// Name is the collection's name in URLs: [a-z][a-z0-9_-]{0,62}.
	Name string `yaml:"name"`
	// Unique lists top-level string fields unique across every shard.
	Unique []string `yaml:"unique"`
	// PublicRead lets GETs through without the token (default false).
	PublicRead bool `yaml:"public-read"`
	// Cache is the Cache-Control of the API's public reads (default: shared
	// for a minute; writes purge the document's tag at the edge).
	Cache RouteCache `yaml:"cache"`
}

// Route is one page: a URL pattern, its template, and the data it shows.
type Route struct {
	// Path is a net/http ServeMux path pattern ("/products/{id}", "/{$}");
	// GET (and HEAD) only.
	Path string `yaml:"path"`
	// Template is the template file name in the templates directory.
	Template string `yaml:"template"`
	// Title is the page's title; a document's "name" field replaces it.
	Title string `yaml:"title"`
	// Document is the collection of the one document the page shows; its
	// ID is the Param wildcard of Path.
	Document string `yaml:"document"`
	// Param is the wildcard of Path holding the document ID (default "id").
	Param string `yaml:"param"`
	// List is the collection whose newest Limit documents the page shows.
	List string `yaml:"list"`
	// Limit is how many documents a List page shows (default 20, at most 1000).
	Limit int `yaml:"limit"`
	// Cache sets the page's Cache-Control.
	Cache RouteCache `yaml:"cache"`
}

// RouteCache is a page's HTTP caching: shared (CDN-cacheable, the
// default) or private. The zero value is "public, max-age=0, s-maxage=60":
// browsers always revalidate, the edge keeps the page until it expires or
// a write purges its tag.
type RouteCache struct {
	// Private marks a per-user page: "private, no-store", never cached
	// at the edge. The durations must then be unset.
	Private bool `yaml:"private"`
	// SMaxAge is how long the edge keeps the page (default 1m).
	SMaxAge time.Duration `yaml:"s-maxage"`
	// StaleWhileRevalidate lets the edge serve a stale copy while it fetches
	// a fresh one (default 0).
	StaleWhileRevalidate time.Duration `yaml:"stale-while-revalidate"`
	// StaleIfError lets the edge serve a stale copy when the origin fails
	// (default 0).
	StaleIfError time.Duration `yaml:"stale-if-error"`
}

// DefaultSMaxAge is a shared page's edge lifetime when the route sets none.
const DefaultSMaxAge = time.Minute

// DefaultRouteLimit is a list page's size when the route sets none.
const DefaultRouteLimit = 20

// IDParam is the route's document ID wildcard.
func (r Route) IDParam() string {
	if r.Param == "" {
		return "id"
	}
	return r.Param
}

// ListLimit is the route's list size.
func (r Route) ListLimit() int {
	if r.Limit == 0 {
		return DefaultRouteLimit
	}
	return r.Limit
}

var collectionName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// validate checks the structured settings; each error names the YAML path
// of the offending value so Parse can point at its line.
func (s *Serve) validate() error {
	cols := map[string]bool{}
	for i, c := range s.Collections {
		p := fmt.Sprintf("serve.collections[%d]", i)
		switch {
		case !collectionName.MatchString(c.Name):
			return &fieldError{p + ".name", fmt.Sprintf("collection name %q: use a lower-case letter then up to 62 of [a-z0-9_-]", c.Name)}
		case cols[c.Name]:
			return &fieldError{p + ".name", fmt.Sprintf("collection %q is declared twice", c.Name)}
		}
		cols[c.Name] = true
		for j, u := range c.Unique {
			if u == "" {
				return &fieldError{fmt.Sprintf("%s.unique[%d]", p, j), "unique field name is empty"}
			}
		}
	}
	seen := map[string]int{}
	for i, r := range s.Routes {
		p := fmt.Sprintf("serve.routes[%d]", i)
		if err := checkPattern(r.Path); err != nil {
			return &fieldError{p + ".path", err.Error()}
		}
		if j, dup := seen[r.Path]; dup {
			return &fieldError{p + ".path", fmt.Sprintf("path %q is also routes[%d]'s", r.Path, j)}
		}
		seen[r.Path] = i
		if r.Template == "" || strings.ContainsAny(r.Template, `/\`) {
			return &fieldError{p + ".template", fmt.Sprintf("template %q: give a file name in the templates directory, such as product.html", r.Template)}
		}
		if r.Document != "" && r.List != "" {
			return &fieldError{p + ".list", "a route shows one document or a list, not both"}
		}
		for key, col := range map[string]string{"document": r.Document, "list": r.List} {
			if col != "" && !cols[col] {
				return &fieldError{p + "." + key, fmt.Sprintf("collection %q is not declared under serve.collections", col)}
			}
		}
		if r.Document != "" && !strings.Contains(r.Path, "{"+r.IDParam()+"}") {
			return &fieldError{p + ".path", fmt.Sprintf("path %q has no {%s} wildcard for the document ID", r.Path, r.IDParam())}
		}
		if r.Document == "" && r.Param != "" {
			return &fieldError{p + ".param", "param is only used with document"}
		}
		if r.Limit < 0 || r.Limit > 1000 || (r.Limit != 0 && r.List == "") {
			return &fieldError{p + ".limit", fmt.Sprintf("limit %d: give 1..1000, with list", r.Limit)}
		}
		c := r.Cache
		if c.Private && (c.SMaxAge|c.StaleWhileRevalidate|c.StaleIfError) != 0 {
			return &fieldError{p + ".cache", "a private page is never cached: drop the durations or private"}
		}
		for name, d := range map[string]time.Duration{"s-maxage": c.SMaxAge, "stale-while-revalidate": c.StaleWhileRevalidate, "stale-if-error": c.StaleIfError} {
			if d < 0 || d%time.Second != 0 {
				return &fieldError{p + ".cache." + name, fmt.Sprintf("%v: give whole seconds, 0 or more", d)}
			}
		}
	}
	return nil
}

// checkPattern reports whether p is a GET-able ServeMux path pattern.
func checkPattern(p string) (err error) {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("path %q: give a path pattern starting with / (methods and hosts are not allowed)", p)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("path %q is not a valid pattern: %v", p, r)
		}
	}()
	http.NewServeMux().Handle("GET "+p, http.NotFoundHandler()) // panics on a bad pattern
	return nil
}

// ParseShards turns NAME=DSN pairs into names and DSNs, in order.
func ParseShards(pairs []string) (names, dsns []string, err error) {
	seen := map[string]bool{}
	for _, p := range pairs {
		name, dsn, ok := strings.Cut(p, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.TrimSpace(dsn) == "" {
			return nil, nil, fmt.Errorf("shard %q: give NAME=DSN, such as s0=postgres://127.0.0.1/shard_0", p)
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("shard %q is given twice", name)
		}
		seen[name] = true
		names, dsns = append(names, name), append(dsns, strings.TrimSpace(dsn))
	}
	if len(names) == 0 {
		return nil, nil, errors.New("no shards: give --shard NAME=DSN (repeatable) or serve.shard in assetctl.yaml")
	}
	return names, dsns, nil
}

// fieldError is a validation error at a YAML path ("serve.routes[1].path").
type fieldError struct {
	Path string
	Msg  string
}

func (e *fieldError) Error() string { return e.Path + ": " + e.Msg }
