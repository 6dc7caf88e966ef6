package shardedapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const moveChildEnv = "SHARDEDAPI_MOVE_CHILD"

type moveChildConfig struct {
	Options Options
	Bucket  int
	To      string
	StopAt  string
	// Writer makes the child a writer instead of a mover: it creates
	// users in Bucket, printing "ack ID" for each, until its stdin closes.
	Writer bool
	Tag    string
}

// writerChild creates users in a bucket with a map it never refreshes on
// its own, acknowledging each on stdout, until stdin closes.
func writerChild(t *testing.T, c moveChildConfig) {
	ctx := context.Background()
	c.Options.RefreshInterval = -1
	cl, err := Open(ctx, c.Options)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	store := NewStore(cl, StoreOptions{})
	var done atomic.Bool
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		done.Store(true)
	}()
	fmt.Println("ready")
	for i := 0; !done.Load(); i++ {
		e := fmt.Sprintf("%s%d@example.com", c.Tag, i)
		if loc, _ := cl.Locate(Key{ID: e}); loc.Bucket != c.Bucket {
			continue
		}
		u, err := store.CreateUser(ctx, NewUser{Email: e, Name: "child"})
		if err != nil {
			fmt.Printf("err %v\n", err)
			continue
		}
		fmt.Printf("ack %d\n", int64(u.ID))
	}
	fmt.Println("end")
}

// moveChild runs a mover that announces when it reaches StopAt and then
// hangs there until its parent kills it with SIGKILL.
func moveChild(t *testing.T, cfg string) {
	var c moveChildConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatal(err)
	}
	if c.Writer {
		writerChild(t, c)
		return
	}
	ctx := context.Background()
	cl, err := Open(ctx, c.Options)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.MoveBucket(ctx, c.Bucket, c.To, MoveOptions{Grace: -1, Lease: 2 * time.Second, hook: func(s string) error {
		if s == c.StopAt {
			fmt.Printf("at %s\n", s)
			select {} // killed here
		}
		return nil
	}})
	t.Fatalf("the child's move returned %v before reaching %s", err, c.StopAt)
}

// TestMoveKilledProcessResumes kills a mover process with SIGKILL while it
// streams changes and while it holds the source's fence exclusively;
// rerunning after its lease expires finishes the move with every row once
// and no slot or publication left.
func TestMoveKilledProcessResumes(t *testing.T) {
	if cfg := os.Getenv(moveChildEnv); cfg != "" {
		moveChild(t, cfg)
		return
	}
	t.Parallel()
	mc := newMoveCluster(t, 2, Layout{})
	ctx := context.Background()
	for i, stopAt := range []string{MoveCatchingUp, "fenced"} {
		bucket := 40 + i
		from, _ := mc.c.ShardOfBucket(bucket)
		to := mc.otherShard(t, bucket)
		ids := seedBucket(t, mc.c, bucket, 50, fmt.Sprintf("k%d-", i))
		cfg, _ := json.Marshal(moveChildConfig{Options: mc.opts, Bucket: bucket, To: to, StopAt: stopAt})
		cmd := exec.Command(os.Args[0], "-test.run=^TestMoveKilledProcessResumes$", "-test.count=1")
		cmd.Env = append(os.Environ(), moveChildEnv+"="+string(cfg))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		reached := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "at ") {
				reached = true
				break
			}
		}
		if !reached {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("the child mover never reached %s", stopAt)
		}
		if err := cmd.Process.Signal(os.Kill); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()

		// Writes go on; past the fence they wait for the rerun.
		other := mc.open(t)
		more := make(chan []ID)
		go func() { more <- seedBucket(t, other, bucket, 3, fmt.Sprintf("l%d-", i)) }()
		var m Move
		for {
			m, err = mc.c.MoveBucket(ctx, bucket, to, MoveOptions{Grace: -1})
			if !errors.Is(err, ErrMoveLeased) {
				break
			}
			time.Sleep(200 * time.Millisecond) // the dead mover's lease runs out
		}
		if err != nil {
			t.Fatalf("rerun after kill -9 at %s: %v", stopAt, err)
		}
		ids = append(ids, <-more...)
		if m.State != MoveDone {
			t.Errorf("rerun after kill -9 at %s: state %s, want done", stopAt, m.State)
		}
		checkMoved(t, mc, bucket, from.Name(), to, ids)
	}
}

// TestMoveWithWriterProcesses moves a bucket while two child processes
// (stale maps, refreshed only by fence refusals) keep creating users in
// it: every user a child acknowledged exists exactly once, on the new
// owner, and no child saw an error.
func TestMoveWithWriterProcesses(t *testing.T) {
	if cfg := os.Getenv(moveChildEnv); cfg != "" {
		moveChild(t, cfg)
		return
	}
	t.Parallel()
	mc := newMoveCluster(t, 2, Layout{})
	ctx := context.Background()
	const bucket = 60
	from, _ := mc.c.ShardOfBucket(bucket)
	to := mc.otherShard(t, bucket)
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines chan string
	}
	var children []child
	for i := range 2 {
		cfg, _ := json.Marshal(moveChildConfig{Options: mc.opts, Bucket: bucket, Writer: true, Tag: fmt.Sprintf("proc%d-", i)})
		cmd := exec.Command(os.Args[0], "-test.run=^TestMoveWithWriterProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), moveChildEnv+"="+string(cfg))
		cmd.Stderr = os.Stderr
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		ch := child{cmd: cmd, stdin: stdin, lines: make(chan string, 1<<16)}
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				ch.lines <- sc.Text()
			}
			close(ch.lines)
		}()
		if l := <-ch.lines; l != "ready" {
			t.Fatalf("child %d: got %q, want ready", i, l)
		}
		children = append(children, ch)
	}
	for countRows(t, from, `SELECT count(*) FROM users WHERE bucket = $1`, bucket) < 50 {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := mc.c.MoveBucket(ctx, bucket, to, MoveOptions{Grace: -1}); err != nil {
		t.Fatalf("MoveBucket: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // a few writes on the new owner
	acked := map[int64]bool{}
	for i, ch := range children {
		ch.stdin.Close()
		for l := range ch.lines {
			switch {
			case strings.HasPrefix(l, "ack "):
				id, _ := strconv.ParseInt(l[4:], 10, 64)
				acked[id] = true
			case strings.HasPrefix(l, "err "):
				t.Errorf("child %d: a write failed during the move: %s", i, l[4:])
			}
		}
		if err := ch.cmd.Wait(); err != nil {
			t.Errorf("child %d: %v", i, err)
		}
	}
	dst := mc.c.Shard(to)
	for id := range acked {
		if n := countRows(t, dst, `SELECT count(*) FROM users WHERE id = $1`, id); n != 1 {
			t.Errorf("acknowledged user %d: %d rows on the new owner, want 1", id, n)
		}
	}
	if n := countRows(t, dst, `SELECT count(*) FROM users WHERE bucket = $1`, bucket); n != len(acked) {
		t.Errorf("users in the bucket on the new owner: got %d, want the %d acknowledged", n, len(acked))
	}
	if n := countRows(t, from, `SELECT count(*) FROM users WHERE bucket = $1`, bucket); n != 0 {
		t.Errorf("users left on the old owner: %d, want 0", n)
	}
	t.Logf("%d users acknowledged by 2 writer processes across the move", len(acked))
}
