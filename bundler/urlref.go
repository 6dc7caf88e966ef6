package bundler

import (
	"net/url"
	"path"
	"strings"
)

// refKind says how a reference is used, which decides what happens when
// its target is missing or is a page.
type refKind int

const (
	refAsset      refKind = iota // must exist (img src, CSS url(), link rel=icon)
	refLink                      // may be a page, a directory or a server route (a href)
	refScript                    // <script src>: an asset that gets SRI
	refEntry                     // <script type=module src> or a .ts/.tsx/.jsx source: an esbuild entry point
	refStylesheet                // <link rel=stylesheet href>: an asset that gets SRI
	refSourceMap                 // a sourceMappingURL comment: rewritten only when present
	refManifest                  // <link rel=manifest href>: a web manifest, itself rewritten
)

// ref is one URL found in a file.
type ref struct {
	URL  string // as written, after markup unescaping
	Line int    // 1-based line in the file that holds it
	Kind refKind
}

// resolved is what a reference becomes in the output.
type resolved struct {
	URL       string   // replacement URL; empty means leave the reference as written
	Integrity string   // SRI value of the target, for <script> and stylesheets
	CSS       []cssRef // stylesheets an entry point needs, to link from the page
	Preload   []cssRef // chunks an entry point imports statically, to modulepreload
}

// cssRef is a stylesheet or module to link next to an entry point's
// script tag.
type cssRef struct {
	URL, Integrity string
}

// resolver turns each reference of a file into its replacement. The same
// rewriters run twice: once to discover references (a recording resolver)
// and once to write the output (the final one).
type resolver interface {
	resolve(r ref) (resolved, error)
}

// urlParts is a local URL split into the path (percent-decoded) and the
// query and fragment, which survive rewriting unchanged.
type urlParts struct {
	raw    string // trimmed URL as written
	path   string // decoded path part
	suffix string // "?query#fragment" as written
}

// localURL reports whether u points at a file of the site, splitting it.
// External URLs (any scheme, or protocol-relative), data:, mailto:,
// #anchors, empty values and template placeholders are not local.
func localURL(u string) (urlParts, bool) {
	u = strings.TrimSpace(u)
	if u == "" || u[0] == '#' || u[0] == '?' || strings.HasPrefix(u, "//") || hasScheme(u) {
		return urlParts{}, false
	}
	if strings.ContainsAny(u, "{}<>") || strings.Contains(u, "${") {
		return urlParts{}, false // a template expression, not a file
	}
	p, suffix := u, ""
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		p, suffix = u[:i], u[i:]
	}
	if p == "" {
		return urlParts{}, false
	}
	dec, err := url.PathUnescape(p)
	if err != nil {
		dec = p
	}
	return urlParts{raw: u, path: dec, suffix: suffix}, true
}

// hasScheme reports whether u starts with a URL scheme ("https:", "data:").
func hasScheme(u string) bool {
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case c == ':' && i > 0:
			return true
		default:
			return false
		}
	}
	return false
}

// resolveRel resolves a decoded URL path against the file that holds it
// (both relative to the site root) and reports whether the result stays
// inside the root. Root-relative paths start at the root.
func resolveRel(from, p string) (string, bool) {
	var joined string
	if strings.HasPrefix(p, "/") {
		joined = path.Clean(p)[1:]
	} else {
		joined = path.Join(path.Dir(from), p)
	}
	if joined == "" {
		joined = "."
	}
	if joined == ".." || strings.HasPrefix(joined, "../") || strings.HasPrefix(p, "/..") {
		return "", false
	}
	return joined, true
}

// isDirURL reports whether a URL path names a directory ("blog/", ".", "/").
func isDirURL(p string) bool {
	return strings.HasSuffix(p, "/") || p == "." || p == ".." || strings.HasSuffix(p, "/.")
}

// replaceBase rewrites the last path segment of a URL as written to
// newBase, keeping its directory part and query/fragment byte for byte:
// "../img/a.png?v=1" with "a.1234abcd.png" gives "../img/a.1234abcd.png?v=1".
func replaceBase(u urlParts, newBase string) string {
	rawPath := strings.TrimSuffix(u.raw, u.suffix)
	dir := rawPath[:strings.LastIndexByte(rawPath, '/')+1]
	return dir + escapeSegment(newBase) + u.suffix
}

// absoluteURL is base + the output path (escaped) + the query/fragment.
func absoluteURL(base, outPath string, u urlParts) string {
	segs := strings.Split(outPath, "/")
	for i, s := range segs {
		segs[i] = escapeSegment(s)
	}
	return base + strings.Join(segs, "/") + u.suffix
}

// escapeSegment percent-encodes what a path segment cannot hold as is.
func escapeSegment(s string) string {
	return strings.ReplaceAll(url.PathEscape(s), "%40", "@")
}
