package origin

import (
	"errors"
	"fmt"
	"html"
	"html/template"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/assetctl/assetctl/manifest"
)

// ErrUnknownAsset means a name is neither a source name, an alias nor an
// output path in the manifest.
var ErrUnknownAsset = errors.New("not in the manifest")

// ErrNotEntry means entry was given a file that is neither a script nor a
// stylesheet.
var ErrNotEntry = errors.New("not a script or stylesheet")

// UnknownAssetError is the error of a lookup of a name the manifest does
// not have. It matches ErrUnknownAsset.
type UnknownAssetError struct {
	Name    string // as asked for
	BuildID string // of the manifest it was looked up in
}

func (e *UnknownAssetError) Error() string {
	return fmt.Sprintf("asset %q is not in the manifest of build %s: check the name against the site's source tree", e.Name, e.BuildID)
}

// Is makes errors.Is(err, ErrUnknownAsset) true.
func (e *UnknownAssetError) Is(target error) bool { return target == ErrUnknownAsset }

// Assets is one immutable snapshot of a manifest served from a CDN base
// URL. Everything a page render needs (URLs, integrity values, the tags of
// every script and stylesheet) is computed once in NewAssets, so lookups
// are map reads. It is safe for concurrent use.
type Assets struct {
	m       *manifest.Manifest
	base    string
	names   map[string]*asset // by source name, alias and output path
	sources []string          // source names and aliases, sorted: suggestion candidates
	links   sync.Map          // LinkHeader results by joined entry names
	nlinks  atomic.Int32
}

type tagKind uint8

const (
	kindOther tagKind = iota
	kindCSS
	kindModule  // a bundle entry or chunk: <script type="module">
	kindClassic // any other script: <script defer>
)

// asset is one manifest file with what rendering it needs.
type asset struct {
	key       string // the manifest's Files key
	file      manifest.File
	url       string // absolute, escaped for an HTML attribute value
	kind      tagKind
	tags      *entryTags // scripts and stylesheets only
	tagsErr   error      // why tags could not be computed (a broken import)
	rawURL    string
	integrity string
}

// entryTags is an entry's tags, precomputed. parts are the static tags
// split where the nonce attribute goes (len(parts)-1 slots); prefetch
// holds the dynamic-import prefetch tags the same way. plain and
// plainPrefetch are the same without a nonce.
type entryTags struct {
	parts, prefetch      []string
	plain, plainPrefetch string
	css                  []*asset // entry CSS then imported chunks' CSS
	script               *asset   // the entry itself when it is a script
	preload              []*asset // statically imported chunks, post-order
}

// NewAssets builds a snapshot of m served from cdnURL, the base the
// output directory was uploaded to ("https://cdn.example.com/site/"). An
// empty cdnURL means m.BaseURL, and when that is empty too, "/" (the
// assets are served by the application itself). A root-relative path
// ("/assets/") is accepted as well.
func NewAssets(m *manifest.Manifest, cdnURL string) (*Assets, error) {
	if m == nil {
		return nil, errors.New("new assets: nil manifest")
	}
	base, err := cleanBase(cdnURL, m.BaseURL)
	if err != nil {
		return nil, err
	}
	a := &Assets{m: m, base: base, names: make(map[string]*asset, len(m.Files)*2)}
	byPath := make(map[string]*asset, len(m.Files))
	keys := make([]string, 0, len(m.Files))
	for k := range m.Files {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic claims when names overlap
	for _, k := range keys {
		f := m.Files[k]
		raw := base + escapePath(f.Path)
		as := &asset{key: k, file: f, rawURL: raw, url: html.EscapeString(raw), integrity: f.Integrity, kind: kindOf(f)}
		byPath[f.Path] = as
		a.names[k] = as
		// Outputs without a source (chunks, bundle CSS) are keyed by their
		// hashed name, which changes every build: never worth suggesting.
		if k != f.Path || !f.Immutable {
			a.sources = append(a.sources, k)
		}
		if f.Alias != "" {
			a.sources = append(a.sources, f.Alias)
		}
	}
	// Aliases and output paths resolve too, but never shadow a source name.
	for _, k := range keys {
		as := a.names[k]
		for _, n := range []string{as.file.Alias, as.file.Path} {
			if _, taken := a.names[n]; n != "" && !taken {
				a.names[n] = as
			}
		}
	}
	sort.Strings(a.sources)
	for _, k := range keys {
		as := a.names[k]
		if as.kind != kindOther {
			as.tags, as.tagsErr = buildTags(as, byPath)
		}
	}
	return a, nil
}

func cleanBase(cdnURL, fallback string) (string, error) {
	base := cdnURL
	if base == "" {
		base = fallback
	}
	if base == "" {
		base = "/"
	}
	u, err := url.Parse(base)
	switch {
	case err != nil:
		return "", fmt.Errorf("CDN URL %q: %w", base, err)
	case u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("CDN URL %q: want a base URL without query or fragment", base)
	case u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/"):
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
	default:
		return "", fmt.Errorf("CDN URL %q: want https://HOST/PREFIX/ (or a path such as /assets/)", base)
	}
	// The base goes into HTML attributes and Link headers as it is.
	if strings.ContainsAny(base, "<>\"'`, ;\\") || strings.ContainsFunc(base, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("CDN URL %q: escape its special characters (quotes, <, >, comma, semicolon, spaces)", base)
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return base, nil
}

func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func kindOf(f manifest.File) tagKind {
	ext := path.Ext(f.Path)
	switch {
	case ext == ".css" || strings.HasPrefix(f.ContentType, "text/css"):
		return kindCSS
	case ext == ".js" || ext == ".mjs" || strings.Contains(f.ContentType, "javascript"):
		if f.Kind == manifest.KindEntry || f.Kind == manifest.KindChunk || len(f.Imports) > 0 {
			return kindModule
		}
		return kindClassic
	}
	return kindOther
}

// buildTags walks an entry's import graph the way Vite's backend guide
// does: a depth-first, post-order walk of the static imports with one seen
// set (so cycles end and every file appears once), never listing the
// entry itself among its preloads.
func buildTags(e *asset, byPath map[string]*asset) (*entryTags, error) {
	t := &entryTags{}
	if e.kind == kindCSS {
		t.css = []*asset{e}
		t.render()
		return t, nil
	}
	t.script = e
	seen := map[string]bool{e.file.Path: true}
	var walkErr error
	var visit func(from *asset, paths []string, out *[]*asset)
	visit = func(from *asset, paths []string, out *[]*asset) {
		for _, p := range paths {
			if seen[p] {
				continue
			}
			seen[p] = true
			c := byPath[p]
			if c == nil {
				if walkErr == nil {
					walkErr = fmt.Errorf("%s imports %s, which the manifest does not list: rebuild the site", from.key, p)
				}
				continue
			}
			visit(c, c.file.Imports, out)
			*out = append(*out, c)
		}
	}
	visit(e, e.file.Imports, &t.preload)
	cssSeen := map[string]bool{}
	addCSS := func(from *asset, list []string, out *[]*asset) {
		for _, p := range list {
			if cssSeen[p] {
				continue
			}
			cssSeen[p] = true
			c := byPath[p]
			if c == nil {
				if walkErr == nil {
					walkErr = fmt.Errorf("%s needs stylesheet %s, which the manifest does not list: rebuild the site", from.key, p)
				}
				continue
			}
			*out = append(*out, c)
		}
	}
	addCSS(e, e.file.CSS, &t.css)
	for _, c := range t.preload {
		addCSS(c, c.file.CSS, &t.css)
	}
	// Dynamic imports (and everything they import, statically or not)
	// that the page does not load already: prefetched at low priority
	// when asked, so a later import() finds them in the cache.
	var dyn []*asset
	var visitDyn func(from *asset, paths []string)
	visitDyn = func(from *asset, paths []string) {
		for _, p := range paths {
			if seen[p] {
				continue
			}
			seen[p] = true
			c := byPath[p]
			if c == nil {
				continue // only a hint: a broken dynamic import is the bundle's to report
			}
			visitDyn(c, c.file.Imports)
			visitDyn(c, c.file.DynamicImports)
			dyn = append(dyn, c)
		}
	}
	visitDyn(e, e.file.DynamicImports)
	for _, c := range t.preload {
		visitDyn(c, c.file.DynamicImports)
	}
	var dynCSS []*asset
	for _, c := range dyn {
		for _, p := range c.file.CSS {
			if s := byPath[p]; s != nil && !cssSeen[p] {
				cssSeen[p] = true
				dynCSS = append(dynCSS, s)
			}
		}
	}
	if walkErr != nil {
		return nil, walkErr
	}
	t.render()
	var pb tagBuilder
	for _, c := range append(dyn, dynCSS...) {
		pb.tag(`<link rel="prefetch" href="`, c, ` fetchpriority="low" crossorigin="anonymous"`, `>`)
	}
	t.prefetch = pb.done()
	t.plainPrefetch = t.plain + strings.Join(t.prefetch, "")
	return t, nil
}

// render lays out the static tags in Vite's order: stylesheets (the
// entry's, then its imported chunks'), the entry script, then the
// modulepreloads of its imported chunks.
func (t *entryTags) render() {
	var b tagBuilder
	for _, c := range t.css {
		b.tag(`<link rel="stylesheet" href="`, c, ` crossorigin="anonymous"`, `>`)
	}
	if s := t.script; s != nil {
		if s.kind == kindModule {
			b.tag(`<script type="module" src="`, s, ` crossorigin="anonymous"`, `></script>`)
		} else {
			b.tag(`<script src="`, s, ` defer crossorigin="anonymous"`, `></script>`)
		}
	}
	for _, c := range t.preload {
		b.tag(`<link rel="modulepreload" href="`, c, ` crossorigin="anonymous"`, `>`)
	}
	t.parts = b.done()
	t.plain = strings.Join(t.parts, "")
}

// tagBuilder accumulates tags as text split at the nonce slots.
type tagBuilder struct {
	parts []string
	cur   strings.Builder
}

// tag writes open URL [integrity] attrs, leaves the nonce slot, then close.
func (b *tagBuilder) tag(open string, a *asset, attrs, closing string) {
	b.cur.WriteString(open)
	b.cur.WriteString(a.url)
	b.cur.WriteString(`"`)
	if a.integrity != "" {
		b.cur.WriteString(` integrity="`)
		b.cur.WriteString(html.EscapeString(a.integrity))
		b.cur.WriteString(`"`)
	}
	b.cur.WriteString(attrs)
	b.parts = append(b.parts, b.cur.String())
	b.cur.Reset()
	b.cur.WriteString(closing)
}

func (b *tagBuilder) done() []string {
	if len(b.parts) == 0 {
		return nil
	}
	return append(b.parts, b.cur.String())
}

// BuildID is the manifest's build ID.
func (a *Assets) BuildID() string { return a.m.BuildID }

// Manifest is the snapshot's manifest; callers must not modify it.
func (a *Assets) Manifest() *manifest.Manifest { return a.m }

// CDNURL is the base URL asset URLs start with, ending in "/".
func (a *Assets) CDNURL() string { return a.base }

func (a *Assets) lookup(name string) (*asset, error) {
	if as, ok := a.names[name]; ok {
		return as, nil
	}
	if as, ok := a.names[strings.TrimPrefix(name, "/")]; ok {
		return as, nil
	}
	return nil, &UnknownAssetError{Name: name, BuildID: a.m.BuildID}
}

// URL returns the absolute CDN URL of the hashed file for name: a source
// name ("css/site.css", a leading slash is ignored), an alias
// ("favicon.ico") or an output path. An unknown name is an
// *UnknownAssetError.
func (a *Assets) URL(name string) (string, error) {
	as, err := a.lookup(name)
	if err != nil {
		return "", err
	}
	return as.rawURL, nil
}

// Integrity returns name's Subresource Integrity value ("sha384-..."), or
// "" when the manifest has none for it.
func (a *Assets) Integrity(name string) (string, error) {
	as, err := a.lookup(name)
	if err != nil {
		return "", err
	}
	return as.integrity, nil
}

// TagOptions change what EntryTags writes. The zero value writes the
// static tags without a nonce.
type TagOptions struct {
	// Nonce is the request's CSP nonce, written on every tag. It must be
	// base64 (standard or URL alphabet). Default: no nonce attribute.
	Nonce string
	// PrefetchDynamic appends low-priority <link rel="prefetch"> tags for
	// the chunks (and their stylesheets) that the entry may import() later.
	PrefetchDynamic bool
}

// ErrBadNonce means a nonce has characters outside base64; it is refused
// rather than escaped, since it is pasted into many contexts.
var ErrBadNonce = errors.New("nonce must be base64")

func validNonce(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// EntryTags returns every tag the entry name needs, in the order Vite's
// backend-integration guide recommends: the entry's stylesheets, the
// stylesheets of every chunk it imports statically (recursively), the
// entry <script type="module"> with integrity and crossorigin="anonymous",
// then <link rel="modulepreload"> for those chunks (never for the entry
// itself); each file once, whatever cycles the graph has. A stylesheet
// name gives its <link rel="stylesheet">.
func (a *Assets) EntryTags(name string, o TagOptions) (template.HTML, error) {
	t, err := a.entry(name)
	if err != nil {
		return "", err
	}
	if o.Nonce == "" {
		if o.PrefetchDynamic {
			return template.HTML(t.plainPrefetch), nil
		}
		return template.HTML(t.plain), nil
	}
	if !validNonce(o.Nonce) {
		return "", fmt.Errorf("entry %q: %w", name, ErrBadNonce)
	}
	attr := ` nonce="` + o.Nonce + `"`
	var b strings.Builder
	b.Grow(len(t.plainPrefetch) + (len(t.parts)+len(t.prefetch))*len(attr))
	joinParts(&b, t.parts, attr)
	if o.PrefetchDynamic {
		joinParts(&b, t.prefetch, attr)
	}
	return template.HTML(b.String()), nil
}

func joinParts(b *strings.Builder, parts []string, attr string) {
	for i, p := range parts {
		if i > 0 {
			b.WriteString(attr)
		}
		b.WriteString(p)
	}
}

func (a *Assets) entry(name string) (*entryTags, error) {
	as, err := a.lookup(name)
	if err != nil {
		return nil, err
	}
	if as.kind == kindOther {
		return nil, fmt.Errorf("entry %q (%s): %w", name, as.file.Path, ErrNotEntry)
	}
	if as.tagsErr != nil {
		return nil, fmt.Errorf("entry %q: %w", name, as.tagsErr)
	}
	return as.tags, nil
}
