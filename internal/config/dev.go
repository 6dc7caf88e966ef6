package config

// Dev is the dev: section of assetctl.yaml. Fields tagged flag:"name" feed
// the flag of that name (see Apply).
type Dev struct{}
