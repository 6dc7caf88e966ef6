// Package cli is the assetctl command line: a thin shell that parses flags,
// environment and the config file, builds loggers and clients, and calls the
// library packages. It holds no product logic of its own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// env is what every command gets from Run: the streams and a logger.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	// globals
	configPath string
	verbose    bool
}

// Run executes assetctl with args (without the program name) and returns the
// process exit code. ctx is cancelled on Ctrl-C.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "assetctl: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "assetctl",
		Short: "Build, fingerprint, deploy and serve a website behind a CDN",
		Long: `assetctl takes a website from source to a CDN:

  build    bundle JS/TS/CSS, fingerprint every asset, rewrite references, write manifest.json
  deploy   upload the build to S3 (or compatible), publish pages last, invalidate only pages
  dev      local dev server with file watching, fast rebuilds and live reload
  serve    origin server rendering templates with CDN asset URLs and sharded dynamic data

Settings come from flags, then ASSETCTL_* environment variables, then the
config file (assetctl.yaml at the site root, or --config).`,
		Example: `  assetctl build examples/site -o dist
  assetctl deploy dist --bucket s3://my-bucket/site --cloudfront-distribution E123ABC
  assetctl dev examples/site
  assetctl serve examples/site --seed`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if e.verbose {
				level = slog.LevelDebug
			}
			e.log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			return nil
		},
	}
	root.PersistentFlags().StringVar(&e.configPath, "config", "", "config file (default: assetctl.yaml at the site root, if present)")
	root.PersistentFlags().BoolVarP(&e.verbose, "verbose", "v", false, "log debug detail to stderr")
	// One line per command; each command lives in its own file.
	root.AddCommand(
		newVersionCmd(e),
		newDeployCmd(e),
		newBuildCmd(e),
		newDevCmd(e),
		newServeCmd(e),
		newShardsCmd(e),
	)
	return root
}
