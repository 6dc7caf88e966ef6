package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// devOutput is a bytes.Buffer safe for a command writing while the test
// reads.
type devOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *devOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *devOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitOutput is a correctness wait for text to appear in out.
func waitOutput(t *testing.T, out *devOutput, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("output: got %q, want it to contain %q", out.String(), text)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeDevFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDevServesRebuildsAndStops(t *testing.T) {
	site := t.TempDir()
	writeDevFiles(t, site, map[string]string{
		"index.html":   `<!doctype html><html><head><link rel="stylesheet" href="css/site.css"></head><body><h1>dev</h1></body></html>`,
		"css/site.css": "h1 { color: red; }",
		// The build: section applies to dev too; dev: sets the server.
		"assetctl.yaml": "build:\n  sri: false\ndev:\n  debounce: 20ms\n",
	})
	addr := testsvc.Addr(testsvc.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr devOutput
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"dev", site, "--addr", addr}, strings.NewReader(""), &stdout, &stderr)
	}()
	waitOutput(t, &stdout, "initial build: built in")
	waitOutput(t, &stdout, "serving "+site+" at http://"+addr+"/")

	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "/__assetctl/client.js") {
		t.Fatalf("GET /: got %d %q, want the page with the live-reload client", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "integrity=") {
		t.Fatalf("GET /: got %q, want no integrity attributes (build: sri: false)", body)
	}

	writeDevFiles(t, site, map[string]string{"css/site.css": "h1 { color: blue; }"})
	waitOutput(t, &stdout, "css/site.css: built in")
	waitOutput(t, &stdout, "styles swapped in 0 tabs")

	writeDevFiles(t, site, map[string]string{"assetctl.yaml": "build:\n  sri: true\ndev:\n  debounce: 20ms\n"})
	waitOutput(t, &stdout, "assetctl dev: assetctl.yaml changed: restart assetctl dev to apply it\n")

	writeDevFiles(t, site, map[string]string{"index.html": `<img src="img/missing.png">`})
	waitOutput(t, &stdout, "index.html: build failed in")
	waitOutput(t, &stdout, "\n  index.html:1:")

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code after Ctrl-C: got %d, want 0; stderr %q", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30s of Ctrl-C")
	}
	if !strings.HasSuffix(stdout.String(), "assetctl dev: stopped\n") {
		t.Fatalf("output: got %q, want it to end with the stop line", stdout.String())
	}
}

func TestDevBadSettings(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	site := t.TempDir()
	writeDevFiles(t, site, map[string]string{"index.html": "<p>x</p>"})
	for _, tc := range []struct {
		name, yaml string
		args       []string
		want       string
	}{
		{"bad duration", "dev:\n  debounce: soon\n", nil, "assetctl.yaml"},
		{"unknown key", "dev:\n  port: 3000\n", nil, "port"},
		{"bad missing-assets", "build:\n  missing-assets: ignore\n", nil, "missing-assets"},
		{"bad ignore glob", "", []string{"--ignore", "a/[b"}, "a/[b"},
		{"port taken", "", []string{"--addr", taken.Addr().String()}, "--addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(site, "assetctl.yaml"))
			if tc.yaml != "" {
				writeDevFiles(t, site, map[string]string{"assetctl.yaml": tc.yaml})
			}
			args := append([]string{"dev", site, "--addr", testsvc.Addr(testsvc.FreePort(t))}, tc.args...)
			code, _, errOut := run(t, args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("got code %d stderr %q, want failure naming %q", code, errOut, tc.want)
			}
		})
	}
}
