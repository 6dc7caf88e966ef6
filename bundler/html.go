package bundler

import (
	"bytes"
	"path"
	"strings"

	"golang.org/x/net/html"
)

// rewriteHTML copies a page to w token by token with the x/net/html
// tokenizer, replacing local references in attributes (src, href, srcset,
// poster, data, meta content, style) and in <style> blocks, adding SRI
// attributes to scripts and stylesheets, and linking the stylesheets an
// entry point needs. Bytes it does not rewrite are copied as they were.
func rewriteHTML(w *bytes.Buffer, src []byte, res resolver) error {
	z := html.NewTokenizer(bytes.NewReader(src))
	line, pos := 1, 0
	inStyle := false
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if pos < len(src) {
				w.Write(src[pos:])
			}
			return nil
		}
		// Copy the raw bytes first: TagName lower-cases the buffer in place.
		raw := append([]byte(nil), z.Raw()...)
		pos += len(raw)
		startLine := line
		line += bytes.Count(raw, []byte{'\n'})
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			name, more := z.TagName()
			tag := string(name)
			var attrs []html.Attribute
			for more {
				var k, v []byte
				k, v, more = z.TagAttr()
				attrs = append(attrs, html.Attribute{Key: string(k), Val: string(v)})
			}
			if err := rewriteTag(w, raw, tag, attrs, startLine, res); err != nil {
				return err
			}
			inStyle = tt == html.StartTagToken && tag == "style"
		case html.TextToken:
			if inStyle {
				if err := rewriteCSS(w, raw, startLine, res); err != nil {
					return err
				}
			} else {
				w.Write(raw)
			}
		default:
			w.Write(raw)
			inStyle = false
		}
	}
}

// attrSpan locates one attribute inside a raw start tag.
type attrSpan struct {
	name             string // lower case
	nameStart        int
	valStart, valEnd int  // the value without quotes; -1 when there is none
	quote            byte // '"', '\'' or 0 for unquoted
}

// scanAttrs finds the attributes of a raw start tag, following the HTML
// tokenizer's attribute states, so a value can be replaced in place.
func scanAttrs(raw []byte) []attrSpan {
	i := 1
	for i < len(raw) && !isHTMLSpace(raw[i]) && raw[i] != '/' && raw[i] != '>' {
		i++
	}
	var spans []attrSpan
	for {
		for i < len(raw) && (isHTMLSpace(raw[i]) || raw[i] == '/') {
			i++
		}
		if i >= len(raw) || raw[i] == '>' {
			return spans
		}
		s := attrSpan{nameStart: i, valStart: -1, valEnd: -1}
		i++ // the first character may be '='
		for i < len(raw) && !isHTMLSpace(raw[i]) && raw[i] != '/' && raw[i] != '>' && raw[i] != '=' {
			i++
		}
		s.name = strings.ToLower(string(raw[s.nameStart:i]))
		j := i
		for j < len(raw) && isHTMLSpace(raw[j]) {
			j++
		}
		if j < len(raw) && raw[j] == '=' {
			j++
			for j < len(raw) && isHTMLSpace(raw[j]) {
				j++
			}
			if j < len(raw) && (raw[j] == '"' || raw[j] == '\'') {
				s.quote = raw[j]
				s.valStart = j + 1
				k := bytes.IndexByte(raw[j+1:], s.quote)
				if k < 0 {
					s.valEnd = len(raw)
					i = len(raw)
				} else {
					s.valEnd = j + 1 + k
					i = s.valEnd + 1
				}
			} else {
				s.valStart = j
				for j < len(raw) && !isHTMLSpace(raw[j]) && raw[j] != '>' {
					j++
				}
				s.valEnd = j
				i = j
			}
		}
		spans = append(spans, s)
	}
}

func isHTMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

// ogURLProperties are <meta property|name> values whose content is a URL.
var ogURLProperties = map[string]bool{
	"og:image": true, "og:image:url": true, "og:image:secure_url": true,
	"og:video": true, "og:video:url": true, "og:video:secure_url": true,
	"og:audio": true, "og:audio:url": true, "og:audio:secure_url": true,
	"twitter:image": true, "twitter:image:src": true, "twitter:player:stream": true,
	"msapplication-tileimage": true, "msapplication-config": true,
}

// assetRels are <link rel> values whose target must exist.
var assetRels = map[string]bool{
	"icon": true, "apple-touch-icon": true, "apple-touch-icon-precomposed": true, "mask-icon": true,
	"preload": true, "modulepreload": true, "prefetch": true, "manifest": true,
}

// entryExts are sources esbuild compiles; a page referencing one makes it
// an entry point whatever its script type.
var entryExts = map[string]bool{".ts": true, ".tsx": true, ".jsx": true, ".mts": true, ".cts": true}

// rewriteTag writes one start tag with its references rewritten.
func rewriteTag(w *bytes.Buffer, raw []byte, tag string, attrs []html.Attribute, line int, res resolver) error {
	spans := firstOfEach(scanAttrs(raw))
	if !sameAttrs(raw, spans, attrs) {
		w.Write(raw) // a tag our scanner reads differently: leave it alone
		return nil
	}
	get := func(name string) (string, bool) {
		for _, a := range attrs {
			if a.Key == name {
				return a.Val, true
			}
		}
		return "", false
	}
	rel := map[string]bool{}
	if v, ok := get("rel"); ok && tag == "link" {
		for _, r := range strings.Fields(strings.ToLower(v)) {
			rel[r] = true
		}
	}
	type edit struct {
		start, end int
		text       []byte
	}
	var edits []edit
	var integrity string
	var injected, preload []cssRef
	sri := false
	module := false // an entry point became an ES module bundle
	for i, s := range spans {
		if s.valStart < 0 {
			continue
		}
		val := attrs[i].Val
		aline := line + bytes.Count(raw[:s.nameStart], []byte{'\n'})
		kind, ok := attrRefKind(tag, s.name, rel, get)
		if !ok {
			continue
		}
		var nv string
		switch s.name {
		case "srcset", "imagesrcset":
			v, err := rewriteSrcset(val, aline, res)
			if err != nil {
				return err
			}
			nv = v
		case "style":
			var b bytes.Buffer
			if err := rewriteCSS(&b, []byte(val), aline, res); err != nil {
				return err
			}
			nv = b.String()
		default:
			r, err := res.resolve(ref{URL: val, Line: aline, Kind: kind})
			if err != nil {
				return err
			}
			if r.URL != "" {
				nv = r.URL
			} else {
				nv = val
			}
			if kind == refScript || kind == refEntry || kind == refStylesheet {
				integrity = r.Integrity
				sri = r.Integrity != ""
			}
			if kind == refEntry && r.URL != "" {
				module = true
			}
			injected, preload = r.CSS, r.Preload
		}
		if nv != val {
			edits = append(edits, edit{s.valStart, s.valEnd, attrValue(nv, s.quote)})
		}
	}
	if module {
		// esbuild emits ES modules: a classic <script src="app.ts"> must
		// become type=module or its imports would not run.
		typeSpan := -1
		for i, sp := range spans {
			if sp.name == "type" {
				typeSpan = i
			}
		}
		switch {
		case typeSpan < 0:
			at := 1 + len(tag)
			edits = append(edits, edit{at, at, []byte(` type="module"`)})
		case !strings.EqualFold(strings.TrimSpace(attrs[typeSpan].Val), "module"):
			sp := spans[typeSpan]
			if sp.valStart >= 0 {
				edits = append(edits, edit{sp.valStart, sp.valEnd, attrValue("module", sp.quote)})
			}
		}
	}
	if sri {
		hasCross := false
		insertAt := 1 + len(tag)
		for i, s := range spans {
			if s.valEnd > insertAt {
				insertAt = s.valEnd
				if s.quote != 0 {
					insertAt++
				}
			} else if s.nameStart+len(s.name) > insertAt {
				insertAt = s.nameStart + len(s.name)
			}
			switch s.name {
			case "integrity":
				if s.valStart >= 0 && attrs[i].Val != integrity {
					edits = append(edits, edit{s.valStart, s.valEnd, attrValue(integrity, s.quote)})
				} else if s.valStart < 0 {
					edits = append(edits, edit{s.nameStart + len(s.name), s.nameStart + len(s.name), []byte(`="` + integrity + `"`)})
				}
				integrity = ""
			case "crossorigin":
				hasCross = true
			}
		}
		var add string
		if integrity != "" {
			add += ` integrity="` + integrity + `"`
		}
		if !hasCross {
			add += ` crossorigin="anonymous"`
		}
		if add != "" && insertAt < len(raw) { // never past the tag's own '>'
			edits = append(edits, edit{insertAt, insertAt, []byte(add)})
		}
	}
	link := func(rel string, c cssRef) {
		w.WriteString(`<link rel="` + rel + `" href="`)
		w.Write(attrValue(c.URL, '"'))
		w.WriteString(`"`)
		if c.Integrity != "" {
			w.WriteString(` integrity="` + c.Integrity + `" crossorigin="anonymous"`)
		}
		w.WriteString(`>`)
	}
	for _, c := range injected {
		link("stylesheet", c)
	}
	for _, c := range preload {
		link("modulepreload", c)
	}
	// Apply edits in order of position; they never overlap.
	sortEdits := func() {
		for i := 1; i < len(edits); i++ {
			for j := i; j > 0 && edits[j].start < edits[j-1].start; j-- {
				edits[j], edits[j-1] = edits[j-1], edits[j]
			}
		}
	}
	sortEdits()
	at := 0
	for _, e := range edits {
		w.Write(raw[at:e.start])
		w.Write(e.text)
		at = e.end
	}
	w.Write(raw[at:])
	return nil
}

// attrRefKind says whether an attribute of a tag holds a reference, and of
// which kind.
func attrRefKind(tag, name string, rel map[string]bool, get func(string) (string, bool)) (refKind, bool) {
	switch name {
	case "style":
		return refAsset, true
	case "src":
		switch tag {
		case "script":
			typ, _ := get("type")
			src, _ := get("src")
			if strings.EqualFold(strings.TrimSpace(typ), "module") || entryExts[strings.ToLower(path.Ext(urlPathOnly(src)))] {
				return refEntry, true
			}
			return refScript, true
		case "img", "source", "video", "audio", "track", "embed", "input":
			return refAsset, true
		}
		return refLink, true
	case "srcset":
		return refAsset, tag == "img" || tag == "source"
	case "imagesrcset":
		return refAsset, tag == "link"
	case "poster":
		return refAsset, tag == "video"
	case "data":
		return refAsset, tag == "object"
	case "href", "xlink:href":
		switch tag {
		case "link":
			if rel["stylesheet"] {
				return refStylesheet, true
			}
			if rel["manifest"] {
				return refManifest, true
			}
			for r := range rel {
				if assetRels[r] {
					return refAsset, true
				}
			}
			return refLink, true
		case "use", "image", "feimage":
			return refAsset, true
		case "base":
			return 0, false
		}
		return refLink, true
	case "content":
		if tag != "meta" {
			return 0, false
		}
		for _, k := range []string{"property", "name", "itemprop"} {
			if v, ok := get(k); ok && (ogURLProperties[strings.ToLower(v)] || (k == "itemprop" && strings.EqualFold(v, "image"))) {
				return refAsset, true
			}
		}
	}
	return 0, false
}

// urlPathOnly drops the query and fragment of a URL.
func urlPathOnly(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i]
	}
	return u
}

// firstOfEach drops repeated attributes: browsers (and the tokenizer) use
// the first one and ignore the rest, which are left as written.
func firstOfEach(spans []attrSpan) []attrSpan {
	seen := map[string]bool{}
	out := spans[:0:0]
	for _, s := range spans {
		if !seen[s.name] {
			seen[s.name] = true
			out = append(out, s)
		}
	}
	return out
}

// sameAttrs checks that scanAttrs read the tag as the tokenizer did.
func sameAttrs(raw []byte, spans []attrSpan, attrs []html.Attribute) bool {
	if len(spans) != len(attrs) {
		return false
	}
	for i, s := range spans {
		if s.name != attrs[i].Key {
			return false
		}
		if s.valStart < 0 {
			if attrs[i].Val != "" {
				return false
			}
			continue
		}
		if html.UnescapeString(string(raw[s.valStart:s.valEnd])) != attrs[i].Val {
			return false
		}
	}
	return true
}

// attrValue escapes v for an attribute value in quote q (0: unquoted,
// which becomes double-quoted when v needs it).
func attrValue(v string, q byte) []byte {
	if q == 0 {
		if v != "" && !strings.ContainsAny(v, " \t\n\r\f\"'=<>`&") {
			return []byte(v)
		}
		return []byte(`"` + escapeAttr(v, '"') + `"`)
	}
	return []byte(escapeAttr(v, q))
}

func escapeAttr(v string, q byte) string {
	v = strings.ReplaceAll(v, "&", "&amp;")
	if q == '"' {
		return strings.ReplaceAll(v, `"`, "&quot;")
	}
	return strings.ReplaceAll(v, "'", "&#39;")
}

// rewriteSrcset rewrites each candidate URL of a srcset, keeping the
// descriptors and separators as written.
func rewriteSrcset(v string, line int, res resolver) (string, error) {
	type span struct{ start, end int }
	var urls []span
	i := 0
	for i < len(v) {
		for i < len(v) && (isHTMLSpace(v[i]) || v[i] == ',') {
			i++
		}
		if i >= len(v) {
			break
		}
		start := i
		for i < len(v) && !isHTMLSpace(v[i]) {
			i++
		}
		end := i
		if v[end-1] == ',' {
			for end > start && v[end-1] == ',' {
				end--
			}
			if end > start {
				urls = append(urls, span{start, end})
			}
			continue
		}
		urls = append(urls, span{start, end})
		depth := 0
		for i < len(v) {
			c := v[i]
			if c == '(' {
				depth++
			} else if c == ')' && depth > 0 {
				depth--
			} else if c == ',' && depth == 0 {
				break
			}
			i++
		}
	}
	out := v
	for k := len(urls) - 1; k >= 0; k-- {
		s := urls[k]
		r, err := res.resolve(ref{URL: v[s.start:s.end], Line: line, Kind: refAsset})
		if err != nil {
			return "", err
		}
		if r.URL != "" {
			out = out[:s.start] + r.URL + out[s.end:]
		}
	}
	return out, nil
}
