package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// exampleSite is the example site every serve test runs: its templates
// and serve: section are the ones make demo uses.
const exampleSite = "../../examples/site"

// serveData is a fresh dataset on the machine's PostgreSQL: a catalog and
// four shard databases, dropped when the test ends.
type serveData struct {
	pg      *testsvc.Postgres
	catalog string
	shards  []string // DSNs, s0..s3
}

func newServeData(t *testing.T) *serveData {
	t.Helper()
	pg := testsvc.MachinePostgres(t)
	d := &serveData{pg: pg, catalog: pg.CreateDatabase(t, "serve_catalog")}
	for i := range 4 {
		d.shards = append(d.shards, pg.CreateDatabase(t, fmt.Sprintf("serve_s%d", i)))
	}
	return d
}

// args are the flags that point assetctl serve at this dataset.
func (d *serveData) args() []string {
	a := []string{"--catalog", d.catalog}
	for i, dsn := range d.shards {
		a = append(a, "--shard", fmt.Sprintf("s%d=%s", i, dsn))
	}
	return a
}

// documentReads is how many times PostgreSQL read the documents table,
// summed over the shards (index and sequential scans). Read it only after
// every origin using the dataset has stopped: a backend flushes its
// counters when it exits (TESTING.md).
func (d *serveData) documentReads(t *testing.T) int64 {
	t.Helper()
	var total int64
	for _, dsn := range d.shards {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			cancel()
			t.Fatalf("connect to shard: %v", err)
		}
		// A fresh snapshot of the statistics, not the transaction's cached one.
		var n int64
		err = conn.QueryRow(ctx, `SELECT coalesce(sum(coalesce(idx_scan,0) + coalesce(seq_scan,0)),0)::bigint FROM pg_stat_user_tables WHERE relname = 'documents'`).Scan(&n)
		conn.Close(ctx)
		cancel()
		if err != nil {
			t.Fatalf("read pg_stat_user_tables: %v", err)
		}
		total += n
	}
	return total
}

// waitBackendsGone waits until no other connection to the shards is open:
// a server backend flushes its statistics when it exits, which happens a
// moment after its client closed the connection.
func (d *serveData) waitBackendsGone(t *testing.T) {
	t.Helper()
	for _, dsn := range d.shards {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			cancel()
			t.Fatalf("connect to shard: %v", err)
		}
		for {
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
				t.Fatalf("read pg_stat_activity: %v", err)
			}
			if n == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		conn.Close(ctx)
		cancel()
	}
}

// buildExample builds the example site into a temporary directory and
// returns it.
func buildExample(t *testing.T, extra ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dist")
	if code, _, stderr := run(t, append([]string{"build", exampleSite, "-o", out}, extra...)...); code != 0 {
		t.Fatalf("assetctl build: %s", stderr)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// served is a running assetctl serve, in this process or in a child.
type served struct {
	URL    string
	Addr   string
	stdout *syncBuffer
	stderr *syncBuffer
	stopFn func() int
	once   sync.Once
	code   int
}

// Stop ends the server gracefully (context cancel or SIGTERM) and returns
// its exit code.
func (s *served) Stop() int {
	s.once.Do(func() { s.code = s.stopFn() })
	return s.code
}

// startServe runs `assetctl serve SITE args...` in this process on a free
// port (or the --addr in args) and waits until /healthz answers.
func startServe(t *testing.T, site string, args ...string) *served {
	t.Helper()
	addr := testsvc.Addr(testsvc.FreePort(t))
	for i, a := range args { // the test chose the address
		if a == "--addr" && i+1 < len(args) {
			addr = args[i+1]
		}
	}
	s := &served{URL: "http://" + addr, Addr: addr, stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	full := append([]string{"serve", site, "--addr", addr}, args...)
	go func() { done <- Run(ctx, full, strings.NewReader(""), s.stdout, s.stderr) }()
	s.stopFn = func() int { cancel(); return <-done }
	t.Cleanup(func() { s.Stop() })
	waitHealthy(t, s, done)
	return s
}

// startServeProcess runs assetctl serve in a child process (the test
// binary through TestServeHelperProcess), so a test can signal it or run
// several.
func startServeProcess(t *testing.T, site string, args ...string) *served {
	t.Helper()
	s, _ := startServeChild(t, site, args...)
	return s
}

// startServeChild is startServeProcess that also returns the child, so a
// test can send it signals other than SIGTERM.
func startServeChild(t *testing.T, site string, args ...string) (*served, *os.Process) {
	t.Helper()
	addr := testsvc.Addr(testsvc.FreePort(t))
	s := &served{URL: "http://" + addr, Addr: addr, stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	full := append([]string{"serve", site, "--addr", addr}, args...)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeHelperProcess$")
	cmd.Env = append(os.Environ(), "ASSETCTL_TEST_SERVE_ARGS="+strings.Join(full, "\x1f"))
	cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		_ = cmd.Wait()
		done <- cmd.ProcessState.ExitCode()
	}()
	s.stopFn = func() int {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case code := <-done:
			return code
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			return <-done
		}
	}
	t.Cleanup(func() { s.Stop() })
	waitHealthy(t, s, done)
	return s, cmd.Process
}

// TestServeHelperProcess is not a test: startServeProcess runs the test
// binary as the assetctl command through it.
func TestServeHelperProcess(t *testing.T) {
	args := os.Getenv("ASSETCTL_TEST_SERVE_ARGS")
	if args == "" {
		return
	}
	// Like cmd/assetctl: SIGINT and SIGTERM cancel the context.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, strings.Split(args, "\x1f"), os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func waitHealthy(t *testing.T, s *served, done chan int) {
	t.Helper()
	for range 1200 { // a first run migrates five databases
		select {
		case code := <-done:
			done <- code
			t.Fatalf("assetctl serve exited with %d before serving:\n%s%s", code, s.stdout, s.stderr)
		default:
		}
		if resp, err := http.Get(s.URL + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("assetctl serve did not answer /healthz at %s:\n%s%s", s.URL, s.stdout, s.stderr)
}

// testToken is the example config's write token.
const testToken = "demo-token-change-me"

// putDoc writes a document through the API and fails the test unless it
// is created or replaced.
func putDoc(t *testing.T, base, collection, id, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, base+"/api/"+collection+"/"+id, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT %s/%s: %v", collection, id, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s/%s: got %s %s, want 200 or 201", collection, id, resp.Status, b)
	}
}

// get fetches url and returns the status, headers and body.
func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}
