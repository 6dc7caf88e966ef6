package shardedapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const moveChildEnv = "SHARDEDAPI_MOVE_CHILD"

type moveChildConfig struct {
	Options Options
	Bucket  int
	To      string
	StopAt  string
}

// moveChild runs a mover that announces when it reaches StopAt and then
// hangs there until its parent kills it with SIGKILL.
func moveChild(t *testing.T, cfg string) {
	var c moveChildConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatal(err)
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
