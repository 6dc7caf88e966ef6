package shardedapi

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/shard/*.sql migrations/catalog/*.sql
var migrationFiles embed.FS

// schemaTable is goose's history table, named so it cannot clash with an
// application's own goose migrations in the same database.
const schemaTable = "shardedapi_schema"

// catalogName is how errors and logs name the catalog database.
const catalogName = "catalog"

func migrationsFor(database string) fs.FS {
	dir := "migrations/shard"
	if database == catalogName {
		dir = "migrations/catalog"
	}
	sub, err := fs.Sub(migrationFiles, dir)
	if err != nil {
		panic(err) // the directories are embedded at compile time
	}
	return sub
}

// wantVersion is the newest migration version compiled in for a database.
func wantVersion(database string) int64 {
	var max int64
	entries, _ := fs.ReadDir(migrationsFor(database), ".")
	for _, e := range entries {
		prefix, _, _ := strings.Cut(e.Name(), "_")
		if v, err := strconv.ParseInt(prefix, 10, 64); err == nil && v > max {
			max = v
		}
	}
	return max
}

// Migrate applies the embedded schema migrations to the catalog and to
// every shard in opts.Shards, all concurrently, in one call. Each database
// is migrated under a PostgreSQL advisory lock, so running Migrate from
// several processes at once is safe; already-applied migrations are
// skipped. A database that fails does not stop the others: the returned
// error joins one error per failed database.
func Migrate(ctx context.Context, opts Options) error {
	if err := opts.validate(); err != nil {
		return err
	}
	log := opts.logger()
	targets := map[string]string{catalogName: opts.CatalogDSN}
	for _, s := range opts.Shards {
		targets[s.Name] = s.DSN
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for name, dsn := range targets {
		wg.Go(func() {
			if err := migrateOne(ctx, name, dsn, log); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func migrateOne(ctx context.Context, database, dsn string, log *slog.Logger) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("migrate %s: parse connection string: %w", database, err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	p, err := newMigrationProvider(database, db, log)
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", database, err)
	}
	for _, r := range results {
		log.InfoContext(ctx, "applied migration", "database", database, "version", r.Source.Version, "duration", r.Duration)
	}
	return nil
}

func newMigrationProvider(database string, db *sql.DB, log *slog.Logger) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("migrate %s: create lock: %w", database, err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrationsFor(database),
		goose.WithTableName(schemaTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(log.With("database", database)),
	)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", database, err)
	}
	return p, nil
}

// schemaVersion reads the version goose recorded in a database (0 when it
// was never migrated).
func schemaVersion(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, schemaTable).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int64
	err := pool.QueryRow(ctx, `SELECT coalesce(max(version_id), 0) FROM `+schemaTable).Scan(&v)
	return v, err
}

// checkSchema returns a *SchemaLagError when the database is behind.
func checkSchema(ctx context.Context, database string, pool *pgxpool.Pool) error {
	have, err := schemaVersion(ctx, pool)
	if err != nil {
		return err
	}
	if want := wantVersion(database); have < want {
		return &SchemaLagError{Database: database, Have: have, Want: want}
	}
	return nil
}
