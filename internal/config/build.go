package config

// Build is the build: section of assetctl.yaml. Fields tagged flag:"name" feed
// the flag of that name (see Apply). Keys are the flag names.
//
//	build:
//	  out: dist
//	  base-url: https://cdn.example.com/assets/
//	  entry: [src/admin.ts]
//	  target: [es2020, safari15]
//	  keep-name: [downloads/*.pdf]
//	  missing-assets: warn
//	  public-dir: static
//	  include: [data/*.json]
type Build struct {
	// Out is the output directory; relative to the config file's directory.
	Out string `yaml:"out" flag:"out"`
	// BaseURL makes asset references in pages absolute URLs on a CDN.
	BaseURL string `yaml:"base-url" flag:"base-url"`
	// Entry adds esbuild entry points to those found in pages.
	Entry []string `yaml:"entry" flag:"entry"`
	// Target lists esbuild targets (es2020, chrome100, safari15, ...).
	Target []string `yaml:"target" flag:"target"`
	// Minify turns bundle minification on or off (default on).
	Minify *bool `yaml:"minify" flag:"minify"`
	// Sourcemap turns bundle source maps on or off (default on).
	Sourcemap *bool `yaml:"sourcemap" flag:"sourcemap"`
	// SRI turns integrity attributes on or off (default on).
	SRI *bool `yaml:"sri" flag:"sri"`
	// KeepName lists glob patterns of files served under their own name.
	KeepName []string `yaml:"keep-name" flag:"keep-name"`
	// Exclude lists glob patterns of source files to leave out.
	Exclude []string `yaml:"exclude" flag:"exclude"`
	// MissingAssets is "error" (default) or "warn".
	MissingAssets string `yaml:"missing-assets" flag:"missing-assets"`
	// PublicDir is copied to the output root as is (default: public/ when
	// the site has one).
	PublicDir string `yaml:"public-dir" flag:"public-dir"`
	// Include lists glob patterns of files published even when nothing
	// references them.
	Include []string `yaml:"include" flag:"include"`
	// Mode picks the .env.[mode] files and import.meta.env.MODE (default
	// production for build, development for dev).
	Mode string `yaml:"mode" flag:"mode"`
	// Workers bounds parallel file processing (default: one per CPU).
	Workers int `yaml:"workers" flag:"workers"`
}
