package config

// Serve is the serve: section of assetctl.yaml. Fields tagged flag:"name" feed
// the flag of that name (see Apply).
type Serve struct{}
