package ghactions_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/assetctl/assetctl/internal/ghactions"
)

// fakeBinary stands in for assetctl in a release archive: the installer
// runs "assetctl version" to check what it installed.
const fakeBinary = "#!/bin/sh\necho \"assetctl v9.9.9 (fake)\"\n"

func tarGz(t *testing.T, name, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func zipOf(t *testing.T, name, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: name, Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(body))
	zw.Close()
	return buf.Bytes()
}

// releaseServer serves release assets by version, /VERSION/NAME, and
// counts the requests.
type releaseServer struct {
	*httptest.Server
	mu       sync.Mutex
	files    map[string][]byte
	requests []string
}

func newReleaseServer(t *testing.T) *releaseServer {
	s := &releaseServer{files: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.URL.Path)
		b, ok := s.files[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

// release publishes archives under version; corrupt lists a wrong checksum
// for the named archive.
func (s *releaseServer) release(version string, archives map[string][]byte, corrupt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sums strings.Builder
	for name, b := range archives {
		s.files["/"+version+"/"+name] = b
		h := sha256.Sum256(b)
		sum := hex.EncodeToString(h[:])
		if name == corrupt {
			sum = strings.Repeat("0", 64)
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, name)
	}
	s.files["/"+version+"/checksums.txt"] = []byte(sums.String())
}

func (s *releaseServer) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests
	s.requests = nil
	return r
}

// install runs scripts/action/install.sh as the action's install step
// would, and returns its exit status, the "path" output and stderr.
func install(t *testing.T, env map[string]string) (ok bool, path, stderr string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "output")
	cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts/action/install.sh"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "GITHUB_OUTPUT=" + out, "GITHUB_PATH=" + filepath.Join(t.TempDir(), "path")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	data, _ := os.ReadFile(out)
	outputs, perr := ghactions.ParseOutputs(string(data))
	if perr != nil {
		t.Fatalf("install.sh wrote unparsable outputs: %v", perr)
	}
	return err == nil, outputs["path"], errb.String()
}

// The release installer against a loopback server: the archive is checked
// against checksums.txt and kept in the tool cache, where the next run
// finds it without a download; a wrong checksum is refused with a clear
// message and nothing is installed; Windows gets the zip and the .exe.
func TestInstallRelease(t *testing.T) {
	srv := newReleaseServer(t)
	srv.release("v9.9.9", map[string][]byte{
		"assetctl_linux_amd64.tar.gz":  tarGz(t, "assetctl", fakeBinary),
		"assetctl_linux_arm64.tar.gz":  tarGz(t, "assetctl", fakeBinary),
		"assetctl_windows_amd64.zip":   zipOf(t, "assetctl.exe", fakeBinary),
		"assetctl_darwin_arm64.tar.gz": tarGz(t, "assetctl", fakeBinary),
	}, "")
	srv.release("v9.9.8", map[string][]byte{"assetctl_linux_amd64.tar.gz": tarGz(t, "assetctl", fakeBinary)}, "assetctl_linux_amd64.tar.gz")
	cache, temp := t.TempDir(), t.TempDir()
	env := func(version, os, arch string) map[string]string {
		return map[string]string{"ASSETCTL_ACTION_INSTALL": "release", "ASSETCTL_ACTION_VERSION": version,
			"ASSETCTL_DOWNLOAD_URL": srv.URL + "/" + version, "RUNNER_TOOL_CACHE": cache, "RUNNER_TEMP": temp,
			"RUNNER_OS": os, "RUNNER_ARCH": arch}
	}

	ok, path, stderr := install(t, env("v9.9.9", "Linux", "X64"))
	want := filepath.Join(cache, "assetctl", "9.9.9", "amd64", "assetctl")
	if !ok || path != want {
		t.Fatalf("install v9.9.9: ok %v, path %q, want %q\n%s", ok, path, want, stderr)
	}
	if got := srv.take(); len(got) != 2 {
		t.Errorf("first install: got requests %v, want checksums.txt and the archive", got)
	}
	if _, err := os.Stat(filepath.Join(cache, "assetctl", "9.9.9", "amd64.complete")); err != nil {
		t.Errorf("tool cache has no completion marker: %v", err)
	}
	ok, path, stderr = install(t, env("9.9.9", "Linux", "X64")) // without the v: the same release
	if !ok || path != want || !strings.Contains(stderr, "tool cache") {
		t.Fatalf("second install: ok %v, path %q\n%s", ok, path, stderr)
	}
	if got := srv.take(); len(got) != 0 {
		t.Errorf("a cached version was downloaded again: %v", got)
	}

	ok, path, stderr = install(t, env("v9.9.8", "Linux", "X64"))
	if ok || path != "" || !strings.Contains(stderr, "checksum mismatch for assetctl_linux_amd64.tar.gz") || !strings.Contains(stderr, "not installing") {
		t.Errorf("wrong checksum: ok %v, path %q, stderr %q; want a refusal naming the archive", ok, path, stderr)
	}
	if _, err := os.Stat(filepath.Join(cache, "assetctl", "9.9.8")); !os.IsNotExist(err) {
		t.Errorf("a refused archive left %s in the tool cache (%v)", filepath.Join(cache, "assetctl", "9.9.8"), err)
	}
	srv.take()

	ok, path, stderr = install(t, env("v9.9.9", "Windows", "X64"))
	if !ok || path != filepath.Join(cache, "assetctl", "9.9.9", "amd64", "assetctl.exe") {
		t.Errorf("Windows: ok %v, path %q\n%s", ok, path, stderr)
	}
	if got := srv.take(); len(got) != 2 || !strings.HasSuffix(got[1], "assetctl_windows_amd64.zip") {
		t.Errorf("Windows: got requests %v, want checksums.txt and the zip", got)
	}

	ok, _, stderr = install(t, env("v9.9.9", "Linux", "S390X"))
	if ok || !strings.Contains(stderr, "unsupported runner architecture") {
		t.Errorf("unknown architecture: ok %v, stderr %q", ok, stderr)
	}
	ok, _, stderr = install(t, env("v9.9.7", "Linux", "ARM64"))
	if ok || !strings.Contains(stderr, "download") {
		t.Errorf("missing release: ok %v, stderr %q", ok, stderr)
	}
}
