package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/assetctl/assetctl/internal/config"
	"github.com/assetctl/assetctl/internal/seed"
	"github.com/assetctl/assetctl/manifest"
	"github.com/assetctl/assetctl/origin"
	"github.com/assetctl/assetctl/shardedapi"
)

// serveFlags are assetctl serve's settings after flags, environment and
// the serve: section have been applied.
type serveFlags struct {
	addr, templates, cdnURL, manifest, endpoint, region string
	pollInterval, cacheTTL, cacheOpTimeout              time.Duration
	catalog, redis, token, tokenFile, tlsCert, tlsKey   string
	cachePrefix                                         string
	shards, purge, corsOrigins                          []string
	drain                                               time.Duration
	l1, seed                                            bool
	dev                                                 string
}

func newServeCmd(e *env) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve [SITE_DIR]",
		Short: "Serve a site's dynamic pages and JSON API, with asset URLs on the CDN",
		Long: `Run the origin server of a site (default: the current directory), configured by
the serve: section of its assetctl.yaml:

  - pages: routes map URL patterns to templates (templates/*.html) and the
    documents they show; asset URLs, integrity and preload hints come from
    the live manifest, which follows deploys (s3://bucket/prefix) or a build
    directory without a restart (polled, and reloaded on SIGHUP);
  - a JSON API per collection at /api/{collection}/{id}, sharded over
    PostgreSQL (catalog + shards) with Redis as the cache (optional);
  - per-route Cache-Control and cache tags, purged at the edge on writes;
  - /healthz, /readyz, /metrics; graceful shutdown on SIGTERM.

On start it creates missing databases, migrates the schema and bootstraps
the shard layout (all idempotent). --seed loads the example data set
(3,000 products, 2,000 users; existing documents are left alone).

--dev SITE_DIR builds the site with the same pipeline as assetctl dev,
serves its assets itself and reloads open pages on every change to the
sources or the templates.`,
		Example: `  assetctl serve examples/site --seed
  assetctl serve . --manifest s3://my-bucket/site --cdn-url https://cdn.example.com/site/
  assetctl serve --dev examples/site
  assetctl serve site --redis '' --shard s0=postgres://db0/app --shard s1=postgres://db1/app   # no Redis`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.dev != "" {
				if len(args) == 1 && filepath.Clean(args[0]) != filepath.Clean(f.dev) {
					return fmt.Errorf("--dev %s and SITE_DIR %s differ: give the site once", f.dev, args[0])
				}
				args = []string{f.dev}
			}
			site, file, _, err := loadSettings(e, cmd, args, func(c *config.File) any { return &c.Serve })
			if err != nil {
				return err
			}
			f.manifest = servePath(cmd, file, "manifest", f.manifest)
			return runServe(cmd.Context(), e, f, site, file)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8080", "host:port to listen on")
	fl.StringVar(&f.templates, "templates", "templates", "directory of the page templates, relative to SITE_DIR")
	fl.StringVar(&f.cdnURL, "cdn-url", "", "base URL the build's assets are served from, such as https://cdn.example.com/site/")
	fl.StringVar(&f.manifest, "manifest", "dist", "where the live manifest comes from: a build directory, or s3://BUCKET[/PREFIX] of assetctl deploy")
	fl.StringVar(&f.endpoint, "endpoint", "", "S3-compatible endpoint URL for an s3:// manifest")
	fl.StringVar(&f.region, "region", "", "the bucket's region for an s3:// manifest (default: from the AWS configuration)")
	fl.DurationVar(&f.pollInterval, "poll-interval", 10*time.Second, "how often the manifest source is checked for a new build")
	fl.StringVar(&f.catalog, "catalog", "", "catalog database connection string (postgres://...)")
	fl.StringArrayVar(&f.shards, "shard", nil, "a shard as NAME=DSN (repeatable)")
	fl.StringVar(&f.redis, "redis", "", "Redis host:port for the cache (default none: reads go to the shards)")
	fl.BoolVar(&f.l1, "l1", false, "keep an in-process cache tier in front of Redis")
	fl.StringVar(&f.cachePrefix, "cache-prefix", "assetctl:serve:", "start of this site's Redis keys (sites sharing a Redis need distinct ones)")
	fl.DurationVar(&f.cacheOpTimeout, "cache-op-timeout", 250*time.Millisecond, "bound on each Redis operation of the cache; past it reads go to the shards")
	fl.DurationVar(&f.cacheTTL, "cache-ttl", 5*time.Minute, "how long a cached document is fresh")
	fl.StringVar(&f.token, "token", "", "bearer token for writes and private reads (prefer --token-file or ASSETCTL_TOKEN)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token")
	fl.StringArrayVar(&f.purge, "purge", nil, "Varnish xkey edge base URL to purge written documents' tags at (repeatable)")
	fl.StringArrayVar(&f.corsOrigins, "cors-origin", nil, "origin allowed to call the API from a browser, or * (repeatable; default none)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file (with --tls-key: HTTPS and HTTP/2)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS key file")
	fl.DurationVar(&f.drain, "drain-delay", 0, "on SIGTERM, how long /readyz answers 503 before the server stops accepting connections")
	fl.BoolVar(&f.seed, "seed", false, "load the example data set (products and users) before serving; idempotent")
	fl.StringVar(&f.dev, "dev", "", "development mode: build SITE_DIR like assetctl dev, serve its assets and live-reload pages")
	return cmd
}

// servePaths resolves a path setting: one from the config file is
// relative to the file's directory; one from a flag or the environment to
// the working directory.
func servePath(cmd *cobra.Command, file *config.File, flag, value string) string {
	if value == "" || filepath.IsAbs(value) || strings.HasPrefix(value, "s3://") {
		return value
	}
	fromUser := cmd.Flags().Changed(flag) || os.Getenv(config.EnvName(flag)) != ""
	if !fromUser && file.Path != "" {
		return filepath.Join(filepath.Dir(file.Path), value)
	}
	return value
}

func runServe(ctx context.Context, e *env, f *serveFlags, site string, file *config.File) error {
	log := e.log
	cfg := file.Serve
	if len(cfg.Routes) == 0 && len(cfg.Collections) == 0 {
		where := "assetctl.yaml"
		if file.Path != "" {
			where = file.Path
		}
		return fmt.Errorf("serve: %s has no serve: collections or routes: see the README's \"assetctl serve\" section", where)
	}
	token, err := serveToken(f)
	if err != nil {
		return err
	}
	names, dsns, err := config.ParseShards(f.shards)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if f.catalog == "" {
		return errors.New("serve: no catalog database: give --catalog or serve.catalog")
	}
	reg := prometheus.NewRegistry()
	opts := shardedapi.Options{CatalogDSN: f.catalog, Logger: log, Registerer: reg}
	for i := range names {
		opts.Shards = append(opts.Shards, shardedapi.ShardConfig{Name: names[i], DSN: dsns[i]})
	}

	// Listen first: in --dev the asset URLs are on this very address.
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w: pick another --addr", f.addr, err)
	}
	defer ln.Close()
	scheme := "http"
	if f.tlsCert != "" {
		scheme = "https"
	}

	// Assets: from the dev build in --dev, else from the manifest source.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var dev *devAssets
	var src origin.ManifestSource
	cdnURL, poll := f.cdnURL, f.pollInterval
	if f.dev != "" {
		dev, err = startDevAssets(ctx, e, site, file)
		if err != nil {
			return err
		}
		defer dev.close()
		// Rebuilds reload the manifest explicitly; the poll is a backstop.
		src, cdnURL, poll = origin.DirSource(dev.out), scheme+"://"+ln.Addr().String()+devPrefix, time.Minute
	} else {
		src, err = newManifestSource(ctx, f.manifest, f.endpoint, f.region)
		if err != nil {
			return err
		}
	}
	if cdnURL == "" {
		return errors.New("serve: no CDN URL: give --cdn-url (where the build's assets are served from)")
	}
	tplDir := filepath.Join(site, f.templates)
	// A new build is swapped in only if the templates' names resolve in it.
	var tpl atomic.Pointer[origin.Templates]
	live, err := origin.NewLive(ctx, src, origin.LiveOptions{
		CDNURL: cdnURL, PollInterval: poll, Logger: log, Registerer: reg,
		Check: func(a *origin.Assets) error {
			if t := tpl.Load(); t != nil {
				return t.Check(a)
			}
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("serve: manifest: %w", err)
	}
	t0, err := origin.LoadTemplates(tplDir, live.Current())
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	tpl.Store(t0)
	// The dataset (after the templates: a typo there fails before any
	// database is touched): databases, schema and layout, each idempotent, so the
	// first run sets everything up and later runs only check it.
	for _, dsn := range append([]string{f.catalog}, dsns...) {
		if err := ensureDatabase(ctx, dsn); err != nil {
			return err
		}
	}
	if err := shardedapi.Migrate(ctx, opts); err != nil {
		return fmt.Errorf("serve: migrate: %w", err)
	}
	if err := shardedapi.Bootstrap(ctx, opts, shardedapi.Layout{}); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	cluster, err := shardedapi.Open(ctx, opts)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer cluster.Close()

	deps := origin.ClusterDependencies(cluster)
	var cache shardedapi.EntryCache
	if f.redis != "" {
		rdb := redis.NewClient(shardedapi.CacheRedisOptions(f.redis))
		defer rdb.Close()
		deps = append(deps, origin.RedisDependency(rdb))
		co := shardedapi.CacheOptions{Name: "documents", Prefix: f.cachePrefix, TTL: f.cacheTTL, OpTimeout: f.cacheOpTimeout, Logger: log, Registerer: reg}
		if f.l1 {
			co.L1Size = 100_000
		}
		c, err := shardedapi.NewCache(rdb, co)
		if err != nil {
			return fmt.Errorf("serve: cache: %w", err)
		}
		defer c.Close()
		cache = c
	} else {
		log.Info("no Redis configured: every read goes to its shard")
	}
	var cols []shardedapi.CollectionConfig
	for _, c := range cfg.Collections {
		cols = append(cols, shardedapi.CollectionConfig{Name: c.Name, Unique: c.Unique})
	}
	store, err := shardedapi.NewDocumentStore(cluster, shardedapi.DocumentStoreOptions{Collections: cols, Cache: cache, Logger: log})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if f.seed {
		start := time.Now()
		res, err := seed.Load(ctx, store, seed.Options{})
		if err != nil {
			return fmt.Errorf("serve: --seed: %w", err)
		}
		fmt.Fprintf(e.stdout, "assetctl serve: seed: %d documents written, %d already there (%s)\n", res.Created, res.Present, time.Since(start).Round(time.Millisecond))
	}

	pages, err := origin.NewPages(t0, store, origin.PagesOptions{Routes: pageRoutes(cfg.Routes), Logger: log})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	var apiCols []origin.APICollection
	for _, c := range cfg.Collections {
		apiCols = append(apiCols, origin.APICollection{Name: c.Name, PrivateReads: !c.PublicRead, Cache: cachePolicy(c.Cache)})
	}
	apiOpts := origin.APIOptions{Collections: apiCols, CORS: origin.CORSOptions{AllowedOrigins: f.corsOrigins}, Logger: log, Registerer: reg}
	if token != "" {
		apiOpts.Tokens = []string{token}
	}
	if len(f.purge) > 0 {
		apiOpts.Purger = newPurgers(f.purge)
	}
	api, err := origin.NewAPI(store, apiOpts)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/", pages)
	if dev != nil {
		dev.mount(mux)
		// Templates and sources change together in dev: load the templates
		// against the new build first, then swap both.
		dev.setOnRebuild(func() error {
			m, err := manifest.Load(dev.out)
			if err != nil {
				return err
			}
			a, err := origin.NewAssets(m, cdnURL)
			if err != nil {
				return err
			}
			t, err := origin.LoadTemplates(tplDir, a)
			if err != nil {
				return err
			}
			tpl.Store(t)
			if err := live.Reload(ctx); err != nil {
				return err
			}
			return pages.SetTemplates(t)
		})
	}
	go live.Run(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := live.Reload(ctx); err != nil {
					log.Warn("SIGHUP: reload manifest", "err", err)
				} else {
					log.Info("SIGHUP: manifest reloaded", "build", live.Current().BuildID())
				}
			}
		}
	}()

	var handler http.Handler = mux
	if dev != nil {
		handler = dev.inject(handler)
	}
	handler = live.Middleware(handler)
	srv, err := origin.NewServer(handler, origin.ServerOptions{
		CDNURL: cdnURL, TLSCertFile: f.tlsCert, TLSKeyFile: f.tlsKey, Logger: log, Registerer: reg, Gatherer: reg,
		Dependencies: deps, DrainDelay: f.drain,
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	fmt.Fprintf(e.stdout, "assetctl serve: %s://%s/ (build %s, assets from %s)\n", scheme, ln.Addr(), live.Current().BuildID(), cdnURL)
	if dev != nil {
		fmt.Fprintf(e.stdout, "assetctl serve: --dev: assets built from %s, served at %s; pages reload on change\n", site, cdnURL)
	}
	err = srv.Serve(ctx, ln)
	fmt.Fprintln(e.stdout, "assetctl serve: stopped")
	return err
}

// serveToken is the bearer token from --token or --token-file.
func serveToken(f *serveFlags) (string, error) {
	if f.token != "" && f.tokenFile != "" {
		return "", errors.New("serve: --token and --token-file are both set: give one")
	}
	if f.tokenFile == "" {
		return f.token, nil
	}
	b, err := os.ReadFile(f.tokenFile)
	if err != nil {
		return "", fmt.Errorf("serve: read --token-file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("serve: --token-file %s is empty", f.tokenFile)
	}
	return t, nil
}

// pageRoutes turns the config's routes into the pages handler's.
func pageRoutes(rs []config.Route) []origin.PageRoute {
	out := make([]origin.PageRoute, 0, len(rs))
	for _, r := range rs {
		out = append(out, origin.PageRoute{
			Pattern: r.Path, Template: r.Template, Title: r.Title, Document: r.Document, Param: r.IDParam(),
			List: r.List, Limit: r.ListLimit(), Cache: cachePolicy(r.Cache),
		})
	}
	return out
}

// cachePolicy is a route's or collection's cache: block as origin's policy.
func cachePolicy(c config.RouteCache) origin.CachePolicy {
	if c.Private {
		return origin.CachePolicy{}
	}
	p := origin.CachePolicy{SMaxAge: c.SMaxAge, StaleWhileRevalidate: c.StaleWhileRevalidate, StaleIfError: c.StaleIfError}
	if p.SMaxAge == 0 {
		p.SMaxAge = config.DefaultSMaxAge
	}
	return p
}

// ensureDatabase creates the database a DSN names when the server says it
// does not exist (SQLSTATE 3D000), so the first run needs no manual setup.
func ensureDatabase(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("serve: database %q: %w", redactDSN(dsn), err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" {
		return fmt.Errorf("serve: connect to %s: %w", redactDSN(dsn), err)
	}
	name := cfg.Database
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err = pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("serve: create database %q: connect to the server's postgres database: %w", name, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if err != nil {
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile by another process
			return nil
		}
		return fmt.Errorf("serve: create database %q: %w", name, err)
	}
	return nil
}

// redactDSN hides a DSN's password in messages.
func redactDSN(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "(unparsable connection string)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// multiPurger purges at every configured edge.
type multiPurger []origin.Purger

func newPurgers(urls []string) origin.Purger {
	client := &http.Client{Timeout: 5 * time.Second}
	var p multiPurger
	for _, u := range urls {
		p = append(p, origin.NewXkeyPurger(u, client))
	}
	if len(p) == 1 {
		return p[0]
	}
	return p
}

func (m multiPurger) Purge(ctx context.Context, tags []string) error {
	var errs []error
	for _, p := range m {
		errs = append(errs, p.Purge(ctx, tags))
	}
	return errors.Join(errs...)
}
