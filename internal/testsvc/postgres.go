package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a PostgreSQL server the tests may create databases on: the
// machine's server (MachinePostgres) or a private cluster (StartPostgres).
type Postgres struct {
	Host string
	Port int
	User string

	dir   string // private clusters only
	pgCtl string
	extra string // extra server options of a private cluster
}

// PostgresOptions configure StartPostgresWith. The zero value is
// StartPostgres's cluster.
type PostgresOptions struct {
	// Logical starts the cluster with wal_level=logical and room for
	// replication slots and WAL senders (bucket moves need them).
	// Default false: the server's default wal_level (replica).
	Logical bool
}

// MachinePostgres is the machine's server at 127.0.0.1:5432 (user
// postgres, trust auth). The test fails with how to provide it if it does
// not answer.
func MachinePostgres(t testing.TB) *Postgres {
	t.Helper()
	pg := &Postgres{Host: "127.0.0.1", Port: 5432, User: "postgres"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at 127.0.0.1:5432 as user postgres: %v\n"+
			"install and start it: apt-get install -y postgresql && pg_ctlcluster 15 main start "+
			"(trust auth for 127.0.0.1 in pg_hba.conf; see TESTING.md)", err)
	}
	conn.Close(ctx)
	return pg
}

// DSN is the connection string of database db on this server.
func (pg *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", pg.User, pg.Host, pg.Port, db)
}

// CreateDatabase creates a database named prefix_<random> and drops it
// (forcibly, closing leftover connections) when the test ends. It returns
// the database's DSN.
func (pg *Postgres) CreateDatabase(t testing.TB, prefix string) string {
	t.Helper()
	name := prefix + "_" + randomSuffix()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatalf("connect to PostgreSQL at %s:%d: %v", pg.Host, pg.Port, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() { pg.dropDatabase(t, name) })
	return pg.DSN(name)
}

func (pg *Postgres) dropDatabase(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		if pg.dir != "" {
			return // the private cluster is already gone, and its files with it
		}
		t.Errorf("drop database %s: connect: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("drop database %s: %v", name, err)
	}
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// StartPostgres initializes and starts a private PostgreSQL cluster on a
// free loopback port, owned by the system user postgres (initdb refuses
// root), with fsync off. The test can Stop and Start it (to take a shard
// down); it is stopped and deleted when the test ends.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	return StartPostgresWith(t, PostgresOptions{})
}

// StartPostgresWith is StartPostgres with options (such as a cluster for
// logical replication).
func StartPostgresWith(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	binDir := postgresBinDir(t)
	initdb := filepath.Join(binDir, "initdb")
	pg := &Postgres{Host: "127.0.0.1", Port: FreePort(t), User: "postgres", pgCtl: filepath.Join(binDir, "pg_ctl")}
	if opts.Logical {
		pg.extra = " -c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20 -c max_slot_wal_keep_size=1GB"
	}
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("a private PostgreSQL cluster runs as the system user postgres, which does not exist: %v (apt-get install -y postgresql creates it)", err)
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	// Not t.TempDir: its parent is private to root, and postgres must enter it.
	dir, err := os.MkdirTemp("", "assetctl-pg-")
	if err != nil {
		t.Fatalf("make cluster dir: %v", err)
	}
	pg.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("chown %s to postgres: %v", dir, err)
	}
	pg.asPostgres(t, initdb, "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync")
	pg.Start(t)
	t.Cleanup(func() { pg.stop(t, false) })
	return pg
}

func postgresBinDir(t testing.TB) string {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		t.Fatalf("pg_ctl not found under /usr/lib/postgresql/*/bin: install the server with `apt-get install -y postgresql`")
	}
	return filepath.Dir(matches[len(matches)-1])
}

// asPostgres runs a PostgreSQL tool as the system user postgres.
func (pg *Postgres) asPostgres(t testing.TB, bin string, args ...string) {
	t.Helper()
	var cmd *exec.Cmd
	if os.Getuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
}

// Start starts the private cluster (again) on its port and waits until it
// accepts connections.
func (pg *Postgres) Start(t testing.TB) {
	t.Helper()
	if pg.dir == "" {
		t.Fatalf("Start: only a private cluster (StartPostgres) can be started")
	}
	pg.asPostgres(t, pg.pgCtl, "-D", filepath.Join(pg.dir, "data"), "-l", filepath.Join(pg.dir, "log"), "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200%s", pg.Port, pg.dir, pg.extra), "start")
}

// Stop stops the private cluster at once (immediate mode, like a crash),
// so clients see their connections drop.
func (pg *Postgres) Stop(t testing.TB) {
	t.Helper()
	pg.stop(t, true)
}

func (pg *Postgres) stop(t testing.TB, mustSucceed bool) {
	t.Helper()
	cmd := exec.Command(pg.pgCtl, "-D", filepath.Join(pg.dir, "data"), "-m", "immediate", "-w", "stop")
	if os.Getuid() == 0 {
		cmd = exec.Command("runuser", "-u", "postgres", "--", pg.pgCtl, "-D", filepath.Join(pg.dir, "data"), "-m", "immediate", "-w", "stop")
	}
	if out, err := cmd.CombinedOutput(); err != nil && mustSucceed {
		t.Fatalf("stop private PostgreSQL: %v\n%s", err, out)
	}
}
