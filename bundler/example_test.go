package bundler_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/assetctl/assetctl/bundler"
)

// Build the example site once, as `assetctl build` does; a dev server
// keeps the Builder and calls Build again with the paths that changed.
func ExampleBuilder() {
	tmp, err := os.MkdirTemp("", "assetctl-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	b, err := bundler.New(bundler.Options{SiteDir: "../examples/site", OutDir: filepath.Join(tmp, "dist")})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	m, err := b.Build(context.Background())
	if err != nil {
		log.Fatal(err) // a *bundler.BuildError lists file:line:col messages
	}
	favicon, _ := m.Lookup("favicon.ico")
	fmt.Println(favicon.Alias, favicon.Immutable)
	robots, _ := m.Lookup("robots.txt")
	fmt.Println(robots.Path, robots.Immutable)
	// Output:
	// favicon.ico true
	// robots.txt false
}

// Import another tool's output (here a tiny Vite-style dist/) without
// renaming anything: its hashed names become immutable, the page and
// public files mutable, and deploy can publish OutDir like a build.
func ExampleImport() {
	tmp, err := os.MkdirTemp("", "assetctl-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dist := filepath.Join(tmp, "dist")
	for name, body := range map[string]string{
		"index.html":               `<script type="module" src="/assets/index-BXq3m2Zb.js"></script>`,
		"assets/index-BXq3m2Zb.js": `console.log("hi")`,
		"favicon.svg":              `<svg/>`,
	} {
		p := filepath.Join(dist, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	m, err := bundler.Import(context.Background(), bundler.PrebuiltOptions{Dir: dist, OutDir: filepath.Join(tmp, "out")})
	if err != nil {
		log.Fatal(err) // a *bundler.BuildError lists page:line for missing files
	}
	for _, name := range []string{"assets/index-BXq3m2Zb.js", "favicon.svg", "index.html"} {
		fmt.Println(name, m.Files[name].Immutable, m.Files[name].Kind)
	}
	// Output:
	// assets/index-BXq3m2Zb.js true asset
	// favicon.svg false static
	// index.html false page
}
