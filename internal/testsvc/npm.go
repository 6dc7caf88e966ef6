package testsvc

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// CreateViteVersion pins the create-vite release the starter fixtures come
// from, so a new template upstream does not change what the tests build.
const CreateViteVersion = "9.3.0"

// ViteVersion is the vite release tests build prebuilt fixtures with.
const ViteVersion = "8.3.8"

// NPMCache is the npm cache the tests share between runs (a directory of
// the user's cache), so a second run installs from it instead of the
// registry.
func NPMCache(t testing.TB) string {
	t.Helper()
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "assetctl-test-npm")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create npm cache: %v", err)
	}
	return dir
}

// NPM runs npm with args in dir, non-interactively and with the shared
// cache, and fails the test with npm's output if it fails.
func NPM(t testing.TB, dir string, args ...string) {
	t.Helper()
	bin := Binary(t, "npm", "apt-get install -y nodejs npm")
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdin = nil
	cmd.Env = append(os.Environ(),
		"npm_config_cache="+NPMCache(t), "npm_config_yes=true", "npm_config_fund=false",
		"npm_config_audit=false", "npm_config_update_notifier=false", "npm_config_prefer_offline=true")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm %v in %s: %v\n%s", args, dir, err, out)
	}
}

// ViteStarter generates the official Vite starter for template (vanilla,
// react-ts, ...) with npm create vite and installs its dependencies, in a
// temporary directory that is removed when the test ends. It returns the
// project's directory. Nothing generated is committed: the npm registry
// (or the shared cache) provides it on every run.
func ViteStarter(t testing.TB, template string) string {
	t.Helper()
	parent := t.TempDir()
	NPM(t, parent, "create", "vite@"+CreateViteVersion, template, "--", "--template", template, "--no-interactive")
	dir := filepath.Join(parent, template)
	NPM(t, dir, "install")
	return dir
}
