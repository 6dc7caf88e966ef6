package cli

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/assetctl/assetctl/bundler"
	"github.com/assetctl/assetctl/devserver"
	"github.com/assetctl/assetctl/internal/config"
)

func newDevCmd(e *env) *cobra.Command {
	var (
		addr, out              string
		open, poll             bool
		pollInterval, debounce time.Duration
		allowedHosts, ignores  []string
	)
	cmd := &cobra.Command{
		Use:   "dev [SITE_DIR]",
		Short: "Serve a site locally, rebuilding on every change, with live reload",
		Long: `Build a site (default: the current directory) with the same pipeline as
assetctl build, serve it from memory, and keep open pages current:

  - a change to a page, script or image reloads the page;
  - a change to stylesheets only swaps them in place, without a reload;
  - a build error shows an overlay with file, line, column and message,
    printed in the terminal too; it goes away once the error is fixed.

Sources are watched recursively (editor temp files, .git, node_modules and
the output are ignored); a burst of changes is one rebuild. Use --poll where
file change notification does not work (network mounts, WSL, containers).

The server binds to 127.0.0.1 and answers only requests whose Host header is
localhost, an IP address or an --allowed-host, against DNS rebinding.
Bundler settings come from the build: section of assetctl.yaml; --base-url
is not used in dev, assets are served locally.`,
		Example: `  assetctl dev examples/site
  assetctl dev . --addr 127.0.0.1:8080 --open
  assetctl dev site --poll --poll-interval 500ms   # network mount, WSL
  assetctl dev site --addr 0.0.0.0:3000 --allowed-host mybox.local`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			site, file, outFromUser, err := loadSettings(e, cmd, args, func(f *config.File) any { return &f.Dev })
			if err != nil {
				return err
			}
			if out == "" {
				tmp, err := os.MkdirTemp("", "assetctl-dev-*")
				if err != nil {
					return fmt.Errorf("create build dir: %w", err)
				}
				defer os.RemoveAll(tmp)
				out = filepath.Join(tmp, "out")
			} else if !outFromUser && file.Path != "" && !filepath.IsAbs(out) {
				out = filepath.Join(filepath.Dir(file.Path), out) // relative to the config file
			}
			opts, err := bundlerOptions(file.Build, site, out)
			if err != nil {
				return fmt.Errorf("build settings: %w", err)
			}
			opts.BaseURL = "" // dev serves every asset itself
			if opts.Mode == "" {
				opts.Mode = bundler.ModeDevelopment // import.meta.env.DEV, .env.development
			}
			opts.Logger = e.log
			b, err := bundler.New(opts)
			if err != nil {
				return fmt.Errorf("build settings: %w", err)
			}
			defer b.Close()

			// Settings are read once; an edit to the config file is only
			// pointed out.
			configRel := ""
			if file.Path != "" {
				if r, err := filepath.Rel(site, file.Path); err == nil && !strings.HasPrefix(r, "..") {
					configRel = filepath.ToSlash(r)
				}
			}
			srv, err := devserver.New(devserver.Options{
				SiteDir: site, OutDir: out, Builder: b, AllowedHosts: allowedHosts, Logger: e.log,
				Watch: devserver.WatchOptions{Debounce: debounce, Poll: poll, PollInterval: pollInterval, Ignore: ignores},
				OnRebuild: func(r devserver.Rebuild) {
					fmt.Fprintln(e.stdout, r.String())
					if configRel != "" && slices.Contains(r.Changed, configRel) {
						fmt.Fprintf(e.stdout, "assetctl dev: %s changed: restart assetctl dev to apply it\n", configRel)
					}
				},
			})
			if err != nil {
				return err
			}
			ln, err := devserver.Listen(addr)
			if err != nil {
				return err
			}
			url := browseURL(ln.Addr().(*net.TCPAddr))
			fmt.Fprintf(e.stdout, "assetctl dev: serving %s at %s (Ctrl-C to stop)\n", site, url)
			if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
				fmt.Fprintf(e.stdout, "assetctl dev: listening on %s: other machines on the network can read the site\n", ln.Addr())
			}
			if open {
				if err := openBrowser(url); err != nil {
					e.log.Warn("open browser", "err", err)
				}
			}
			if err := srv.Run(cmd.Context(), ln); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "assetctl dev: stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:3000", "host:port to listen on")
	f.StringVarP(&out, "out", "o", "", "directory builds are written to before being served (default: a temporary one)")
	f.BoolVar(&open, "open", false, "open the site in the default browser")
	f.BoolVar(&poll, "poll", false, "poll the file system for changes instead of using inotify")
	f.DurationVar(&pollInterval, "poll-interval", 300*time.Millisecond, "how often --poll looks for changes")
	f.DurationVar(&debounce, "debounce", devserver.DefaultDebounce, "quiet time that ends a burst of changes before a rebuild")
	f.StringArrayVar(&allowedHosts, "allowed-host", nil, "extra Host header name to accept, besides localhost and IP addresses (repeatable)")
	f.StringArrayVar(&ignores, "ignore", nil, "glob of paths whose changes never rebuild, relative to SITE_DIR (repeatable)")
	return cmd
}

// browseURL is the URL to open for a listener: wildcard addresses are
// reached through localhost.
func browseURL(a *net.TCPAddr) string {
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "localhost"
	}
	return fmt.Sprintf("http://%s/", net.JoinHostPort(host, fmt.Sprint(a.Port)))
}

// openBrowser opens url in the desktop's default browser.
func openBrowser(url string) error {
	var c *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		c = exec.Command("open", url)
	case "windows":
		c = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		c = exec.Command("xdg-open", url)
	}
	if err := c.Start(); err != nil {
		return fmt.Errorf("open %s: %w", url, err)
	}
	go func() { _ = c.Wait() }() // the opener's exit status says nothing useful
	return nil
}
