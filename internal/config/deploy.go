package config

import (
	"fmt"
	"time"

	"github.com/bmatcuk/doublestar/v4"
)

// Deploy is the deploy: section of assetctl.yaml. Fields tagged flag:"name" feed
// the flag of that name (see Apply).
type Deploy struct {
	// Bucket is s3://BUCKET[/PREFIX].
	Bucket string `yaml:"bucket" flag:"bucket"`
	// Endpoint is an S3-compatible endpoint URL (path-style addressing).
	Endpoint string `yaml:"endpoint" flag:"endpoint"`
	// Region is the bucket's region.
	Region string `yaml:"region" flag:"region"`
	// CloudFrontDistributions are the distribution IDs to invalidate.
	CloudFrontDistributions []string `yaml:"cloudfront-distributions" flag:"cloudfront-distribution"`
	// CloudFrontEndpoint overrides the CloudFront API endpoint (for tests).
	CloudFrontEndpoint string `yaml:"cloudfront-endpoint" flag:"cloudfront-endpoint"`
	// Purge are HTTP purge base URLs (Varnish/Fastly-style edges).
	Purge []string `yaml:"purge" flag:"purge"`
	// OriginPath is the object-key prefix the CDNs serve at their root,
	// overriding what is read from CloudFront.
	OriginPath string `yaml:"origin-path" flag:"origin-path"`
	// BaseURL is where viewers reach the bucket root; the deploy's URL is it
	// plus the prefix's viewer path.
	BaseURL string `yaml:"base-url" flag:"base-url"`
	// MaxInvalidationPaths collapses an invalidation to a wildcard past this
	// many paths.
	MaxInvalidationPaths *int `yaml:"max-invalidation-paths" flag:"max-invalidation-paths"`
	// Keep is how many deploy records protect their assets from pruning.
	Keep *int `yaml:"keep" flag:"keep"`
	// Grace is how long a replaced deploy's assets stay after it stopped being live.
	Grace time.Duration `yaml:"grace" flag:"grace"`
	// MaxDeletes caps one prune; past it the prune is skipped.
	MaxDeletes *int `yaml:"max-deletes" flag:"max-deletes"`
	// Concurrency is the number of parallel transfers.
	Concurrency *int `yaml:"concurrency" flag:"concurrency"`
	// Wait waits for CDN invalidations to complete.
	Wait *bool `yaml:"wait" flag:"wait"`
	// Rules set Cache-Control and Content-Type by output path, first match
	// per header wins; they override the built-in defaults.
	Rules HeaderRules `yaml:"rules"`
}

// HeaderRule sets headers for the output paths its glob matches.
type HeaderRule struct {
	// Match is a doublestar glob over the output path ("**/*.woff2", "index.html").
	Match string `yaml:"match"`
	// CacheControl replaces the default Cache-Control when set.
	CacheControl string `yaml:"cache-control"`
	// ContentType replaces the manifest's content type when set.
	ContentType string `yaml:"content-type"`
}

// HeaderRules is the ordered rule list; decoding validates every glob, so
// a bad pattern is reported when the file is read, not mid-deploy.
type HeaderRules []HeaderRule

// UnmarshalYAML decodes and validates the rules.
func (r *HeaderRules) UnmarshalYAML(unmarshal func(any) error) error {
	var rules []HeaderRule
	if err := unmarshal(&rules); err != nil {
		return err
	}
	if err := HeaderRules(rules).Validate(); err != nil {
		return err
	}
	*r = rules
	return nil
}

// Validate checks that every rule has a valid glob and sets something.
func (r HeaderRules) Validate() error {
	for i, rule := range r {
		if rule.Match == "" {
			return fmt.Errorf("deploy.rules[%d]: match is empty: give a glob such as \"**/*.html\"", i)
		}
		if !doublestar.ValidatePattern(rule.Match) {
			return fmt.Errorf("deploy.rules[%d]: match %q is not a valid glob (doublestar syntax: *, **, ?, [abc], {a,b})", i, rule.Match)
		}
		if rule.CacheControl == "" && rule.ContentType == "" {
			return fmt.Errorf("deploy.rules[%d] (%q): sets neither cache-control nor content-type", i, rule.Match)
		}
	}
	return nil
}
