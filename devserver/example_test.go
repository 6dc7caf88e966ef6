package devserver_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/assetctl/assetctl/bundler"
	"github.com/assetctl/assetctl/devserver"
)

// Serve a site with live reload on the `assetctl build` pipeline until
// Ctrl-C, printing one line per rebuild.
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	out, err := os.MkdirTemp("", "dev-*")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(out)
	b, err := bundler.New(bundler.Options{SiteDir: "examples/site", OutDir: out + "/site"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	srv, err := devserver.New(devserver.Options{
		SiteDir:   "examples/site",
		OutDir:    out + "/site",
		Builder:   b,
		OnRebuild: func(r devserver.Rebuild) { fmt.Println(r) },
	})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := devserver.Listen("127.0.0.1:3000")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("serving http://127.0.0.1:3000/")
	if err := srv.Run(ctx, ln); err != nil {
		log.Fatal(err)
	}
}
