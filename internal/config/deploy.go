package config

// Deploy is the deploy: section of assetctl.yaml. Fields tagged flag:"name" feed
// the flag of that name (see Apply).
type Deploy struct{}
