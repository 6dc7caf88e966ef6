// Package testsvc finds or starts the real services that assetctl's tests
// talk to (PostgreSQL, Redis, an S3 server, the moto CloudFront API,
// Varnish, Chromium), so every test gets them the same way. A service that
// cannot be found or started fails the test with a message saying how to
// provide it (never a silent skip); everything a helper starts is stopped
// by t.Cleanup.
package testsvc

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is 127.0.0.1:port.
func Addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// Binary finds an executable by name on PATH or in the given extra
// directories (such as $GOPATH/bin); if it is missing the test fails with
// install, the command that provides it.
func Binary(t testing.TB, name, install string, extraDirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range extraDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("%s not found on PATH: install it with `%s` (or run .ci/run, which installs every test dependency)", name, install)
	return ""
}

// GoBin is where `go install` puts binaries: $GOBIN, else $GOPATH/bin,
// else ~/go/bin.
func GoBin() string {
	if d := os.Getenv("GOBIN"); d != "" {
		return d
	}
	if d := os.Getenv("GOPATH"); d != "" {
		return filepath.Join(filepath.SplitList(d)[0], "bin")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "go", "bin")
}

// Process is a child process started for a test. Its combined output is
// kept for failure messages.
type Process struct {
	Name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

// Write collects the child's output; it implements io.Writer.
func (p *Process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output is what the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Start runs a command in its own process group and stops it when the test
// ends. env entries are added to the current environment.
func Start(t testing.TB, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = p
	p.cmd.Stderr = p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s (%s): %v", name, bin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	return p
}

// Kill stops the process group with SIGKILL and waits for it to exit.
func (p *Process) Kill() {
	if p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitTCP waits until addr accepts TCP connections, failing the test with
// the process's output if it exits or does not listen within timeout.
func (p *Process) WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	if err := waitTCP(addr, timeout, p.done); err != nil {
		t.Fatalf("%s did not start listening on %s: %v\n--- output ---\n%s", p.Name, addr, err, p.Output())
	}
}

// WaitTCP waits until addr accepts TCP connections.
func WaitTCP(addr string, timeout time.Duration) error { return waitTCP(addr, timeout, nil) }

func waitTCP(addr string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still refused after %v: %w", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
