package config

// Build is the build: section of assetctl.yaml. Fields tagged flag:"name" feed
// the flag of that name (see Apply).
type Build struct{}
