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

// deployRef derives the caller reference of one deploy's invalidation
// from that deploy's identity: the build it publishes, the build it
// replaces, its deploy record (or start time) and its paths. Flipping
// between two builds (X, Y, X, Y, as rollbacks do) therefore gets a new
// reference every time, so CloudFront creates a new invalidation instead of
// returning the one an earlier flip made. Only a retry of the same
// interrupted deploy reuses a reference: the one kept in its pending marker.
func deployRef(buildID, previousBuildID, identity string, paths []string) string {
	h := sha256.New()
	h.Write([]byte(previousBuildID + "\n" + identity + "\n" + strings.Join(paths, "\n")))
	return "assetctl-" + buildID + "-" + hex.EncodeToString(h.Sum(nil))[:16]
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
