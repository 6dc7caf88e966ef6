// Command assetctl builds a website into content-hashed assets, deploys it
// to S3 behind a CDN, serves it locally with live reload, and runs the
// origin server for its dynamic side. See README.md for usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/assetctl/assetctl/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
