package cli

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestBuildScripts runs the real assetctl binary against the scripts in
// testdata/build: success on examples/site, determinism, stale files,
// bad config, missing assets with file:line, escapes, and no partial
// OUT_DIR on failure.
func TestBuildScripts(t *testing.T) {
	bin := t.TempDir()
	buildAssetctl(t, bin)
	example, err := filepath.Abs("../../examples/site")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/build",
		Setup: func(e *testscript.Env) error {
			e.Setenv("PATH", bin+string(os.PathListSeparator)+e.Getenv("PATH"))
			e.Setenv("EXAMPLE", example)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"cmptree": cmdCmpTree,
			"nomatch": cmdNoMatch,
		},
	})
}

// buildAssetctl builds the assetctl binary into dir and returns its path.
func buildAssetctl(t *testing.T, dir string) string {
	t.Helper()
	exe := filepath.Join(dir, "assetctl")
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	build := exec.Command("go", "build", "-o", exe, "../../cmd/assetctl")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// cmdCmpTree compares two directory trees byte for byte: cmptree a b.
func cmdCmpTree(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: cmptree dir1 dir2")
	}
	read := func(dir string) map[string][]byte {
		out := map[string][]byte{}
		root := ts.MkAbs(dir)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			data, err := os.ReadFile(p)
			out[rel] = data
			return err
		})
		ts.Check(err)
		return out
	}
	a, b := read(args[0]), read(args[1])
	diff := ""
	for p, d := range a {
		if e, ok := b[p]; !ok {
			diff += fmt.Sprintf("%s only in %s\n", p, args[0])
		} else if !bytes.Equal(d, e) {
			diff += fmt.Sprintf("%s differs\n", p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			diff += fmt.Sprintf("%s only in %s\n", p, args[1])
		}
	}
	if neg && diff == "" {
		ts.Fatalf("trees are identical, want a difference")
	}
	if !neg && diff != "" {
		ts.Fatalf("trees differ:\n%s", diff)
	}
}

// cmdNoMatch fails if any path matches the glob: nomatch 'dir/.dist.tmp-*'.
func cmdNoMatch(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: nomatch glob")
	}
	m, err := filepath.Glob(ts.MkAbs(args[0]))
	ts.Check(err)
	if !neg && len(m) > 0 {
		ts.Fatalf("got %v, want no match for %s", m, args[0])
	}
	if neg && len(m) == 0 {
		ts.Fatalf("got no match for %s, want one", args[0])
	}
}
