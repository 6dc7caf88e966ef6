package bundler

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/assetctl/assetctl/internal/sitegen"
)

// TestDeterminismProperty: for generated sites of several shapes, a build
// is a function of the input alone: with one worker or many, into a fresh
// or an existing OUT_DIR, the output trees are byte-identical, every
// output is listed in the manifest with its true hash, and every
// reference resolves (points 4, 8, 9).
func TestDeterminismProperty(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			site := t.TempDir()
			ctx := context.Background()
			if _, _, err := sitegen.Site(ctx, site, sitegen.Options{
				Files: 40 + int(seed)*10, Bytes: 300 << 10, Pages: 3 + int(seed), Stylesheets: 2 + int(seed),
				Large: 1, LargeSize: 64 << 10, Seed: seed,
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := sitegen.JSSite(ctx, site, sitegen.JSOptions{Entries: 1 + int(seed), Modules: 10 * int(seed), Seed: seed}); err != nil {
				t.Fatal(err)
			}
			a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
			ma := mustBuild(t, Options{SiteDir: site, OutDir: a, Workers: 1})
			mb := mustBuild(t, Options{SiteDir: site, OutDir: b, Workers: 8})
			mb2 := mustBuild(t, Options{SiteDir: site, OutDir: b, Workers: 3}) // over the previous output
			if ma.BuildID != mb.BuildID || mb.BuildID != mb2.BuildID {
				t.Errorf("buildIDs %s, %s, %s: want all equal", ma.BuildID, mb.BuildID, mb2.BuildID)
			}
			ta, tb := tree(t, a), tree(t, b)
			if len(ta) != len(tb) {
				t.Fatalf("got %d and %d files, want equal", len(ta), len(tb))
			}
			for p, d := range ta {
				if !bytes.Equal(d, tb[p]) {
					t.Errorf("%s differs between builds", p)
				}
			}
			checkOutput(t, a, ma)
			checkLinks(t, a)
		})
	}
}
