package config

import "time"

// Dev is the dev: section of assetctl.yaml. Fields tagged flag:"name" feed
// the flag of that name (see Apply). Keys are the flag names.
//
//	dev:
//	  addr: 127.0.0.1:3000
//	  allowed-host: [mybox.local]
//	  ignore: ["drafts/**"]
//	  poll: true           # for network mounts, WSL, some containers
//	  poll-interval: 500ms
//
// The bundler settings (entry, target, keep-name, exclude, ...) come from
// the build: section, so dev builds exactly what `assetctl build` does.
type Dev struct {
	// Addr is the host:port to listen on (default 127.0.0.1:3000).
	Addr string `yaml:"addr" flag:"addr"`
	// Out is where builds are written before being served from memory
	// (default: a temporary directory removed on exit).
	Out string `yaml:"out" flag:"out"`
	// Open opens the site in the default browser on start.
	Open *bool `yaml:"open" flag:"open"`
	// Poll walks the tree for changes instead of using inotify.
	Poll *bool `yaml:"poll" flag:"poll"`
	// PollInterval is the polling period with Poll (default 300ms).
	PollInterval time.Duration `yaml:"poll-interval" flag:"poll-interval"`
	// Debounce is the quiet time that ends a burst of changes (default 30ms).
	Debounce time.Duration `yaml:"debounce" flag:"debounce"`
	// AllowedHost lists extra Host header names to accept.
	AllowedHost []string `yaml:"allowed-host" flag:"allowed-host"`
	// Ignore lists glob patterns of paths whose changes never rebuild.
	Ignore []string `yaml:"ignore" flag:"ignore"`
}
