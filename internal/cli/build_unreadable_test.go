package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestBuildUnreadableFile runs assetctl build on a site with a file it
// cannot read: one message naming the file, a non-zero exit, and no OUT_DIR.
// Root reads anything, so as root the binary runs as user nobody.
func TestBuildUnreadableFile(t *testing.T) {
	// A world-readable tree (t.TempDir is private to the test's user).
	root, err := os.MkdirTemp("", "assetctl-unreadable-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	exe := buildAssetctl(t, root)
	site := filepath.Join(root, "site")
	files := map[string]string{
		"index.html":   `<!doctype html><link rel="stylesheet" href="css/site.css"><img src="img/logo.png">`,
		"css/site.css": `body { color: red }`,
		"img/logo.png": "not really a png",
	}
	for name, body := range files {
		p := filepath.Join(site, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(site, "img/logo.png"), 0); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(root, "work") // where OUT_DIR goes, writable by the build's user
	if err := os.Mkdir(work, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{root, work} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.Command(exe, "build", site, "-o", filepath.Join(work, "dist"))
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "HOME="+work)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if err == nil {
		t.Fatalf("got exit 0, want a failure for the unreadable img/logo.png")
	}
	msg := stderr.String()
	if !strings.Contains(msg, "img/logo.png") || !strings.Contains(msg, "permission denied") {
		t.Errorf("got stderr %q, want one message naming img/logo.png and the permission error", msg)
	}
	if n := strings.Count(strings.TrimSpace(msg), "\n"); n != 0 {
		t.Errorf("got %d lines on stderr, want one:\n%s", n+1, msg)
	}
	entries, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("got %s left in the OUT_DIR's parent after a failed build, want nothing", e.Name())
	}
}
