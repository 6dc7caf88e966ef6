package bundler

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden/want")

// TestGolden builds testdata/golden/site, a site full of rewriting edge
// cases (point 3), and compares every text output and the manifest with
// testdata/golden/want. Run `go test ./bundler -run TestGolden -update`
// after an intended change and review the diff.
func TestGolden(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	m := mustBuild(t, Options{SiteDir: "testdata/golden/site", OutDir: out})
	checkOutput(t, out, m)
	got := tree(t, out)
	for p, data := range got {
		if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
			delete(got, p) // binary: covered by the manifest's hash
		}
	}
	wantDir := filepath.Join("testdata", "golden", "want")
	if *update {
		if err := os.RemoveAll(wantDir); err != nil {
			t.Fatal(err)
		}
		for p, data := range got {
			dst := filepath.Join(wantDir, filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	want := tree(t, wantDir)
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: missing from the output", p)
			continue
		}
		if !bytes.Equal(g, w) {
			t.Errorf("%s differs from the golden file (run with -update to accept):\n%s", p, lineDiff(string(w), string(g)))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: output has no golden file (run with -update to accept)", p)
		}
	}
}

// lineDiff shows the lines that differ between want and got.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g + "\n")
		}
	}
	return b.String()
}
