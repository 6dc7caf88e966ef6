package uploader

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"sort"
	"strings"
)

// InvalidationPaths returns the CDN paths to invalidate for changed output
// paths: "/docs/index.html" also as "/docs/" and "/docs", since a CDN
// caches each URL form separately. The result is sorted and deduplicated.
func InvalidationPaths(outPaths []string) []string {
	set := map[string]struct{}{}
	for _, p := range outPaths {
		set["/"+p] = struct{}{}
		if path.Base(p) != "index.html" {
			continue
		}
		dir := path.Dir(p)
		if dir == "." {
			set["/"] = struct{}{}
			continue
		}
		set["/"+dir+"/"] = struct{}{}
		set["/"+dir] = struct{}{}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// callerRef derives an invalidation's caller reference from the build ID
// and its paths: a retried deploy sends the same reference for the same
// batch, so CloudFront creates (and bills) it once.
func callerRef(buildID string, paths []string) string {
	h := sha256.Sum256([]byte(strings.Join(paths, "\n")))
	return "assetctl-" + buildID + "-" + hex.EncodeToString(h[:])[:12]
}

func mergePaths(a, b []string) []string {
	set := map[string]struct{}{}
	for _, p := range a {
		set[p] = struct{}{}
	}
	for _, p := range b {
		set[p] = struct{}{}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
