package testsvc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartVarnishVCL starts varnishd on a free loopback port with a whole VCL
// of the caller's (backends included), for edges StartVarnish's VCL does
// not describe: a CDN that adds CORS headers to assets, or one cache in
// front of two backends. It is stopped when the test ends.
func StartVarnishVCL(t testing.TB, vcl string) *Varnish {
	t.Helper()
	bin := Binary(t, "varnishd", "apt-get install -y varnish varnish-modules", "/usr/sbin")
	// varnishd drops privileges before it reads the VCL, so the directory
	// must be readable by its unprivileged user: t.TempDir's parents are
	// mode 700, hence a directory of our own with mode 755.
	dir, err := os.MkdirTemp("", "assetctl-varnish-")
	if err != nil {
		t.Fatalf("make varnish dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("chmod varnish dir: %v", err)
	}
	vclPath := filepath.Join(dir, "edge.vcl")
	if err := os.WriteFile(vclPath, []byte(vcl), 0o644); err != nil {
		t.Fatalf("write edge.vcl: %v", err)
	}
	listen := FreePort(t)
	pidFile := filepath.Join(dir, "varnish.pid")
	// varnishd daemonizes: the command returns once the edge runs.
	cmd := exec.Command(bin, "-a", Addr(listen), "-f", vclPath, "-n", filepath.Join(dir, "varnish"),
		"-s", "malloc,64m", "-P", pidFile, "-T", "none")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start varnishd: %v\n%s\n%s", err, out, vcl)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("read varnishd pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("varnishd pid file %s: %v", pidFile, err)
	}
	v := &Varnish{URL: "http://" + Addr(listen), Dir: dir, pid: pid}
	t.Cleanup(v.stop)
	if err := WaitTCP(Addr(listen), 30*time.Second); err != nil {
		t.Fatalf("varnishd did not listen on %s: %v", Addr(listen), err)
	}
	return v
}
