package uploader

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// CDNPaths are the paths viewers request from one CDN that an invalidation
// reaches.
type CDNPaths struct {
	// CDN names the CDN: "cloudfront:E2QWRUHAPOMQZL" or a purge base URL.
	CDN string `json:"cdn"`
	// OriginPath is the object-key prefix the CDN serves at its root ("" for
	// the bucket root, "/www"), and where it came from.
	OriginPath string `json:"originPath"`
	// Source says how OriginPath was found: "distribution" (read from the
	// CloudFront configuration), "flag" (the override) or "default".
	Source string `json:"source"`
	// Paths are the viewer paths, sorted. Empty when the deployed prefix is
	// outside the origin path, so no viewer can reach it through this CDN.
	Paths []string `json:"paths"`
}

// ViewerMapper is implemented by invalidators that can say, without
// invalidating anything, which viewer paths an invalidation of bucket
// paths reaches: a plan shows them and a deploy checks them before it
// publishes. CloudFront, Purge and Combined implement it.
type ViewerMapper interface {
	ViewerPaths(ctx context.Context, bucketPaths []string) ([]CDNPaths, error)
}

// BucketPaths turns paths relative to a deploy prefix (as Plan.Invalidate
// holds them) into bucket paths, "/" + object key, the form every
// Invalidator is given: prefix "www" turns "/docs/" into "/www/docs/", and
// the prefix's root "/" into "/www/" and "/www".
func BucketPaths(prefix string, sitePaths []string) []string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return append([]string(nil), sitePaths...)
	}
	out := make([]string, 0, len(sitePaths)+1)
	for _, p := range sitePaths {
		out = append(out, "/"+prefix+p)
		if p == "/" {
			out = append(out, "/"+prefix)
		}
	}
	sort.Strings(out)
	return out
}

// CleanOriginPath normalises an origin path as CloudFront writes it:
// "", "/" and "/www/" become "" and "/www". An origin path with "." or ".."
// elements, or with "//", is an error.
func CleanOriginPath(p string) (string, error) {
	t := strings.Trim(p, "/")
	if t == "" {
		return "", nil
	}
	for _, el := range strings.Split(t, "/") {
		if el == "" || el == "." || el == ".." {
			return "", fmt.Errorf("origin path %q: want a clean path such as /www", p)
		}
	}
	return "/" + t, nil
}

// viewerPaths maps bucket paths to the paths viewers request from a CDN
// that serves the bucket under originPath (cleaned): "/www/docs/" becomes
// "/docs/" for origin path "/www". Paths outside the origin path are
// unreachable through that CDN and dropped, and so is the origin path's
// own directory form without a slash (viewers ask for "/").
func viewerPaths(originPath string, bucketPaths []string) []string {
	set := map[string]bool{}
	for _, p := range bucketPaths {
		if originPath == "" {
			set[p] = true
			continue
		}
		if rest, ok := strings.CutPrefix(p, originPath); ok && strings.HasPrefix(rest, "/") {
			set[rest] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
