package uploader

import (
	"fmt"
	"mime"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// The Cache-Control values used when no rule matches (pattern 19 of the
// design notes): a year for content-hashed names, a minute for the rest.
const (
	CacheImmutable = "public, max-age=31536000, immutable"
	CacheMutable   = "public, max-age=60"
)

// Rule sets headers for the output paths its glob matches. For each
// header, the first rule that matches and sets it wins.
type Rule struct {
	// Match is a doublestar glob over the output path relative to the
	// output directory ("**/*.html", "fonts/*.woff2").
	Match string
	// CacheControl, when set, replaces the default Cache-Control.
	CacheControl string
	// ContentType, when set, replaces the manifest's content type.
	ContentType string
}

func validateRules(rules []Rule) error {
	for i, r := range rules {
		if !doublestar.ValidatePattern(r.Match) || r.Match == "" {
			return fmt.Errorf("rule %d: invalid glob %q", i, r.Match)
		}
	}
	return nil
}

// headersFor computes the headers an output is published with.
func headersFor(rules []Rule, outPath, contentType, hash string, immutable bool) Headers {
	h := Headers{ContentType: contentType, CacheControl: CacheMutable, SHA256: hash}
	if immutable {
		h.CacheControl = CacheImmutable
	}
	var ccSet, ctSet bool
	for _, r := range rules {
		if ccSet && ctSet {
			break
		}
		if !doublestar.MatchUnvalidated(r.Match, outPath) {
			continue
		}
		if r.CacheControl != "" && !ccSet {
			h.CacheControl, ccSet = r.CacheControl, true
		}
		if r.ContentType != "" && !ctSet {
			h.ContentType, ctSet = r.ContentType, true
		}
	}
	h.ContentType = withCharset(h.ContentType)
	return h
}

// withCharset adds "; charset=utf-8" to textual types that lack a charset,
// so browsers never guess the encoding of HTML, CSS, JS or JSON.
func withCharset(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || params["charset"] != "" {
		return ct
	}
	textual := strings.HasPrefix(mt, "text/") ||
		strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml") ||
		mt == "application/javascript" || mt == "application/json" || mt == "application/xml" ||
		mt == "image/svg+xml"
	if !textual {
		return ct
	}
	return ct + "; charset=utf-8"
}
