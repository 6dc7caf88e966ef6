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
