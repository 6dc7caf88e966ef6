package ghactions_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// git runs git in the repository and returns its trimmed output.
func git(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", repoRoot}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// snapshot builds the release of the committed HEAD from a fresh copy of
// it in its own directory and returns the release folder.
func snapshot(t *testing.T, commit, epoch, targets string) string {
	t.Helper()
	dir := t.TempDir()
	archive := exec.Command("git", "-C", repoRoot, "archive", commit)
	untar := exec.Command("tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive: %v", err)
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("untar: %v", err)
	}
	out := filepath.Join(dir, "release")
	cmd := exec.Command("bash", filepath.Join(dir, "scripts/release.sh"))
	cmd.Env = append(os.Environ(), "VERSION=v0.0.0-test", "COMMIT="+commit, "SOURCE_DATE_EPOCH="+epoch, "OUT="+out, "TARGETS="+targets)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release.sh in %s: %v\n%s", dir, err, b)
	}
	return out
}

// make release's script, in snapshot mode, for this machine's target and
// darwin/arm64: built twice from two directories the archives are
// byte-identical; checksums.txt matches them; the binary reports the
// version and commit; and the action's installer installs the archive.
func TestReleaseReproducible(t *testing.T) {
	commit := git(t, "rev-parse", "HEAD")
	epoch := git(t, "log", "-1", "--format=%ct")
	native := "linux/" + runtime.GOARCH
	a := snapshot(t, commit, epoch, native+" darwin/arm64")
	b := snapshot(t, commit, epoch, native+" darwin/arm64")

	names := []string{"assetctl_darwin_arm64.tar.gz", "assetctl_linux_" + runtime.GOARCH + ".tar.gz", "checksums.txt"} // checksums.txt's order
	entries, _ := os.ReadDir(a)
	if len(entries) != len(names) {
		t.Errorf("release folder holds %d files, want %v", len(entries), names)
	}
	files := map[string][]byte{}
	for _, n := range names {
		x, err := os.ReadFile(filepath.Join(a, n))
		if err != nil {
			t.Fatalf("release: %v", err)
		}
		y, err := os.ReadFile(filepath.Join(b, n))
		if err != nil {
			t.Fatalf("release: %v", err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two builds of %s from two directories", n, commit[:12])
		}
		files[n] = x
	}
	var want strings.Builder
	for _, n := range names[:2] {
		h := sha256.Sum256(files[n])
		want.WriteString(hex.EncodeToString(h[:]) + "  " + n + "\n")
	}
	if got := string(files["checksums.txt"]); got != want.String() {
		t.Errorf("checksums.txt:\n%s\nwant:\n%s", got, want.String())
	}

	// The binary inside reports what it was built as.
	zr, err := gzip.NewReader(bytes.NewReader(files[names[1]]))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	bin := filepath.Join(t.TempDir(), "assetctl")
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no assetctl in %s: %v", names[1], err)
		}
		if h.Name == "assetctl" {
			f, _ := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
			io.Copy(f, tr)
			f.Close()
			break
		}
	}
	wantVersion := "assetctl v0.0.0-test (commit " + commit[:12] + ")\n"
	if out, err := exec.Command(bin, "version").Output(); err != nil || string(out) != wantVersion {
		t.Errorf("assetctl version: got %q (%v), want %q", out, err, wantVersion)
	}

	// The action's installer takes the release as published.
	srv := httptest.NewServer(http.FileServer(http.Dir(a)))
	defer srv.Close()
	ok, path, stderr := install(t, map[string]string{"ASSETCTL_ACTION_INSTALL": "release", "ASSETCTL_ACTION_VERSION": "v0.0.0-test",
		"ASSETCTL_DOWNLOAD_URL": srv.URL, "RUNNER_TOOL_CACHE": t.TempDir(), "RUNNER_TEMP": t.TempDir(),
		"RUNNER_OS": "Linux", "RUNNER_ARCH": map[string]string{"amd64": "X64", "arm64": "ARM64"}[runtime.GOARCH]})
	if !ok || !strings.Contains(stderr, strings.TrimSpace(wantVersion)) {
		t.Errorf("install the release: ok %v, path %q\n%s", ok, path, stderr)
	}
}
