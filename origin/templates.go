package origin

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrNoTemplate means Render was asked for a template file the directory
// does not have.
var ErrNoTemplate = errors.New("no such template")

// TemplateError is one constant asset name in a template that the manifest
// cannot resolve.
type TemplateError struct {
	File       string // the template file, as LoadTemplates found it (dir joined)
	Line       int
	Func       string // asset, integrity or entry
	Name       string // the name as written
	Suggestion string // the closest name the manifest has, or ""
	Err        error
}

func (e *TemplateError) Error() string {
	s := fmt.Sprintf("%s:%d: %s %q: %v", e.File, e.Line, e.Func, e.Name, e.Err)
	if e.Suggestion != "" {
		s += fmt.Sprintf(" (did you mean %q?)", e.Suggestion)
	}
	return s
}

func (e *TemplateError) Unwrap() error { return e.Err }

// CheckError lists every name in the templates that a manifest cannot
// resolve, in file and line order, one per line.
type CheckError struct {
	BuildID string
	Errs    []*TemplateError
}

func (e *CheckError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "templates use %d asset name(s) that build %s does not have:", len(e.Errs), e.BuildID)
	for _, te := range e.Errs {
		b.WriteString("\n\t")
		b.WriteString(te.Error())
	}
	return b.String()
}

// Unwrap returns the TemplateErrors, for errors.As and errors.Is.
func (e *CheckError) Unwrap() []error {
	out := make([]error, len(e.Errs))
	for i, te := range e.Errs {
		out[i] = te
	}
	return out
}

// Templates is a directory of html/template files whose constant asset
// names are known to resolve against a manifest.
//
// Every *.html file under the directory (nested directories included) is
// a template named by its slash-separated path relative to the directory
// ("product.html", "layouts/base.html"). Layouts and partials (files
// another file invokes by name, files under layouts/, partials/,
// components/ or shared/, and files named _*.html) are shared: each file
// is rendered in a set holding every shared file and then itself, so a
// page can {{define "content"}} for the layout's {{block "content"}}
// without another page's "content" overwriting it.
//
// Template functions:
//
//	asset "css/site.css"           absolute CDN URL of the hashed file
//	integrity "css/site.css"       its Subresource Integrity value
//	entry "js/app.ts"              every tag the entry needs (see Assets.EntryTags),
//	entry "js/app.ts" "prefetch"   ... plus prefetch tags for its dynamic imports
//	nonce                          the request's CSP nonce, for inline <script nonce="{{nonce}}">
//	buildID                        the build ID of the request's manifest
//
// Rendering needs no per-request Clone or Parse: each file's set is cloned
// once per manifest snapshot with functions bound to that snapshot, the
// calls whose output is then constant are folded into text (see
// templates_fold.go), and the nonce, which differs per request, is written
// as a secret random placeholder that Render replaces in the finished page.
type Templates struct {
	dir        string
	token      string // the nonce placeholder: random per Templates, never in user data
	tokenBytes []byte
	files      map[string]*page
	names      []string
	userFuncs  template.FuncMap
	refs       []ref // every constant name, in file and line order

	last   atomic.Pointer[snapshot]
	mu     sync.Mutex
	recent []*snapshot // the snapshots clones exist for, newest last
	bufs   sync.Pool
}

type page struct {
	name    string
	master  *template.Template // never executed, so it can be cloned
	entries []string
}

// snapshot is the template sets bound to one Assets.
type snapshot struct {
	assets  *Assets
	pages   map[string]*snapPage
	entries sync.Map // entryKey → template.HTML with the nonce placeholder
	funcs   template.FuncMap
}

type snapPage struct {
	once sync.Once
	t    *template.Template
	err  error
}

type entryKey struct {
	name     string
	prefetch bool
}

// maxSnapshots is how many manifests have template clones at once: the
// current one and the one requests still in flight may be using.
const maxSnapshots = 2

// LoadTemplates parses every *.html file under dir and resolves every
// constant name passed to asset, integrity and entry against a. All
// problems are reported at once, each naming file:line: syntax errors
// first (then nothing else is checked); otherwise html/template's
// escaping errors (a missing {{template}}, an ambiguous context) joined
// with a *CheckError listing every unresolvable name with the closest
// existing one (errors.As finds it).
func LoadTemplates(dir string, a *Assets) (*Templates, error) {
	return LoadTemplatesWith(dir, a, TemplateOptions{})
}

// TemplateOptions configure LoadTemplatesWith. The zero value is
// LoadTemplates.
type TemplateOptions struct {
	// Funcs are the application's own template functions, added to
	// asset, integrity, entry, nonce and buildID (whose names they may not
	// take). They should not have side effects: each page is executed once
	// without data when it is first checked. Default: none.
	Funcs template.FuncMap
}

// LoadTemplatesWith is LoadTemplates with the application's own template
// functions.
func LoadTemplatesWith(dir string, a *Assets, o TemplateOptions) (*Templates, error) {
	if a == nil {
		return nil, errors.New("load templates: nil assets")
	}
	for name := range o.Funcs {
		if resolvingFuncs[name] || name == "nonce" || name == "buildID" {
			return nil, fmt.Errorf("load templates: function %q is origin's own: rename yours", name)
		}
	}
	srcs, names, err := readTemplateDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load templates: %w", err)
	}
	t := &Templates{dir: dir, files: map[string]*page{}, userFuncs: o.Funcs}
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, fmt.Errorf("load templates: %w", err)
	}
	t.token = "ZQn" + hex.EncodeToString(tok[:]) // Z: rare in HTML, so the search for it is fast
	t.tokenBytes = []byte(t.token)
	t.names = names

	// Every file alone first, so each syntax error is reported against
	// its own file and all of them at once; and to learn which files are
	// layouts or partials (see isShared).
	stub := t.funcsFor(&snapshot{assets: a})
	var errs []error
	invoked := map[string]bool{}
	for _, name := range t.names {
		alone, err := template.New(name).Funcs(stub).Parse(srcs[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("parse template %s: %w", filepath.Join(dir, name), err))
			continue
		}
		for _, tt := range alone.Templates() {
			if tt.Tree != nil {
				for _, c := range walkTree(tt.Tree).calls {
					invoked[c] = true
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	shared := template.New("").Funcs(stub)
	for _, name := range t.names {
		if !isShared(name, invoked) {
			continue
		}
		if _, err := shared.New(name).Parse(srcs[name]); err != nil {
			return nil, fmt.Errorf("parse template %s: %w", filepath.Join(dir, name), err)
		}
	}
	seen := map[string]bool{} // file\x00pos: a tree walked in two sets counts once
	for _, name := range t.names {
		set, err := shared.Clone()
		if err != nil {
			return nil, fmt.Errorf("load template %s: %w", name, err)
		}
		// Parsed last, the file's own {{define}}s win in its set.
		if _, err := set.New(name).Parse(srcs[name]); err != nil {
			return nil, fmt.Errorf("parse template %s: %w", filepath.Join(dir, name), err)
		}
		p := &page{name: name, master: set}
		infos := map[string]treeInfo{}
		for _, tt := range set.Templates() {
			if tt.Tree == nil {
				continue
			}
			info := walkTree(tt.Tree)
			infos[tt.Name()] = info
			if tt.Tree.ParseName != name {
				continue
			}
			for _, r := range info.refs {
				k := r.file + "\x00" + fmt.Sprint(r.pos)
				if !seen[k] {
					seen[k] = true
					t.refs = append(t.refs, r)
				}
			}
		}
		p.entries = reachableEntries(name, infos)
		t.files[name] = p
		if !isShared(name, invoked) {
			// Escape a throwaway clone of each page now, so what html/template
			// reports at first execution (a missing {{template}}, an action in
			// an ambiguous context) stops start-up too, naming file:line.
			if err := escapeCheck(set, name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	sort.SliceStable(t.refs, func(i, j int) bool {
		if t.refs[i].file != t.refs[j].file {
			return t.refs[i].file < t.refs[j].file
		}
		return t.refs[i].pos < t.refs[j].pos
	})
	if err := t.Check(a); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// escapeCheck escapes a clone of page name in set and returns
// html/template's escaping error, if any.
func escapeCheck(set *template.Template, name string) error {
	c, err := set.Clone()
	if err != nil {
		return fmt.Errorf("check template %s: %w", name, err)
	}
	err = c.Lookup(name).Execute(probeWriter{}, nil)
	var te *template.Error
	if errors.As(err, &te) {
		return fmt.Errorf("check template %s: %w", name, err)
	}
	return nil
}

// sharedDirs hold layouts and partials by convention.
var sharedDirs = map[string]bool{"layouts": true, "partials": true, "components": true, "shared": true}

// isShared reports whether a template file is a layout or partial, whose
// {{define}}s every other file sees, rather than a page, whose {{define}}s
// (its "content", "title", ...) only it sees. A file is shared when
// another file invokes it by name ({{template "layouts/base.html" .}}),
// when it sits under a directory named layouts, partials, components or
// shared, or when its name starts with "_".
func isShared(name string, invoked map[string]bool) bool {
	if invoked[name] || strings.HasPrefix(path.Base(name), "_") {
		return true
	}
	dirs := strings.Split(name, "/")
	for _, d := range dirs[:len(dirs)-1] {
		if sharedDirs[d] {
			return true
		}
	}
	return false
}

// reachableEntries lists the constant entry names of root and of every
// template it invokes, transitively, each once, in the order met.
func reachableEntries(root string, infos map[string]treeInfo) []string {
	var out []string
	got := map[string]bool{}
	visited := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		if visited[name] {
			return
		}
		visited[name] = true
		info := infos[name]
		for _, r := range info.refs {
			if r.fn == "entry" && !got[r.name] {
				got[r.name] = true
				out = append(out, r.name)
			}
		}
		for _, c := range info.calls {
			visit(c)
		}
	}
	visit(root)
	return out
}

// Check resolves every constant name the templates use against a, as
// LoadTemplates did against the first manifest: run it on a new build
// before swapping it in (LiveOptions.Check). It returns a *CheckError.
func (t *Templates) Check(a *Assets) error {
	if a == nil {
		return errors.New("check templates: nil assets")
	}
	var errs []*TemplateError
	var entryNames []string
	for _, r := range t.refs {
		var err error
		switch r.fn {
		case "entry":
			_, err = a.entry(r.name)
			if err == nil && r.bad != "" {
				err = fmt.Errorf("unknown option %q (want \"prefetch\")", r.bad)
			}
		default:
			_, err = a.lookup(r.name)
		}
		if err == nil {
			continue
		}
		te := &TemplateError{File: filepath.Join(t.dir, r.file), Line: r.line, Func: r.fn, Name: r.name, Err: err}
		if errors.Is(err, ErrUnknownAsset) {
			cands := a.sources
			if r.fn == "entry" {
				if entryNames == nil {
					entryNames = a.entryNames()
				}
				cands = entryNames
			}
			te.Suggestion = closest(r.name, cands)
		}
		errs = append(errs, te)
	}
	if len(errs) == 0 {
		return nil
	}
	return &CheckError{BuildID: a.BuildID(), Errs: errs}
}

// entryNames are the source names entry accepts: scripts and stylesheets.
func (a *Assets) entryNames() []string {
	out := []string{}
	for _, n := range a.sources {
		if as := a.names[n]; as != nil && as.kind != kindOther {
			out = append(out, n)
		}
	}
	return out
}

// Has reports whether name is a template file of the directory.
func (t *Templates) Has(name string) bool { _, ok := t.files[name]; return ok }

// Names lists the template files, sorted.
func (t *Templates) Names() []string { return append([]string(nil), t.names...) }

// Entries lists the constant entry names template name uses, itself or
// through the templates it invokes, in order: what LinkHeader needs for
// that page.
func (t *Templates) Entries(name string) []string {
	p := t.files[name]
	if p == nil {
		return nil
	}
	return append([]string(nil), p.entries...)
}

// RenderContext is what one request renders with.
type RenderContext struct {
	// Assets is the request's snapshot (AssetsFrom(r.Context()) under
	// Live.Middleware); required.
	Assets *Assets
	// Nonce is the request's CSP nonce (base64), written on every tag entry
	// makes and by the nonce function. Default: no nonce attributes.
	Nonce string
}

// Render executes template name with data into w. The page is rendered
// into a buffer first, so on an error nothing has been written and the
// caller can still send an error page.
func (t *Templates) Render(w io.Writer, name string, data any, rc RenderContext) error {
	if rc.Assets == nil {
		return fmt.Errorf("render %s: no assets in the render context", name)
	}
	if !validNonce(rc.Nonce) {
		return fmt.Errorf("render %s: %w", name, ErrBadNonce)
	}
	s := t.snapshotFor(rc.Assets)
	sp := s.pages[name]
	if sp == nil {
		return fmt.Errorf("render %s: %w in %s", name, ErrNoTemplate, t.dir)
	}
	sp.once.Do(func() {
		sp.t, sp.err = t.files[name].master.Clone()
		if sp.err == nil {
			sp.t.Funcs(s.funcs)
			sp.t = sp.t.Lookup(name)
			escapeNow(sp.t)
			t.foldSet(sp.t, s)
		}
	})
	if sp.err != nil {
		return fmt.Errorf("render %s: %w", name, sp.err)
	}
	buf := t.getBuf()
	defer t.putBuf(buf)
	if err := sp.t.Execute(buf, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	out := buf.Bytes()
	if bytes.Contains(out, t.tokenBytes) {
		filled := t.getBuf()
		defer t.putBuf(filled)
		t.fillNonce(filled, out, rc.Nonce)
		out = filled.Bytes()
	}
	_, err := w.Write(out)
	return err
}

// fillNonce replaces the placeholder with the nonce. With no nonce, an
// attribute nonce="<placeholder>" goes away whole rather than stay empty.
func (t *Templates) fillNonce(out *bytes.Buffer, in []byte, nonce string) {
	tok := t.tokenBytes
	const attr = ` nonce="`
	out.Grow(len(in))
	for {
		i := bytes.Index(in, tok)
		if i < 0 {
			out.Write(in)
			return
		}
		end := i + len(tok)
		if nonce == "" && bytes.HasSuffix(in[:i], []byte(attr)) && end < len(in) && in[end] == '"' {
			out.Write(in[:i-len(attr)])
			in = in[end+1:]
			continue
		}
		out.Write(in[:i])
		out.WriteString(nonce)
		in = in[end:]
	}
}

func (t *Templates) getBuf() *bytes.Buffer {
	if b, ok := t.bufs.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

func (t *Templates) putBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		t.bufs.Put(b)
	}
}

// snapshotFor returns the template sets bound to a, making them (lazily,
// per file) the first time a is seen. Only the newest maxSnapshots are
// kept: older requests than that have long finished.
func (t *Templates) snapshotFor(a *Assets) *snapshot {
	if s := t.last.Load(); s != nil && s.assets == a {
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.recent {
		if s.assets == a {
			return s
		}
	}
	s := &snapshot{assets: a, pages: make(map[string]*snapPage, len(t.files))}
	for name := range t.files {
		s.pages[name] = &snapPage{}
	}
	s.funcs = t.funcsFor(s)
	t.recent = append(t.recent, s)
	if len(t.recent) > maxSnapshots {
		t.recent = t.recent[len(t.recent)-maxSnapshots:]
	}
	t.last.Store(s)
	return s
}

// entryHTML is the entry function: the entry's tags with the nonce
// placeholder, made once per snapshot.
func (t *Templates) entryHTML(s *snapshot, name string, opts []string) (template.HTML, error) {
	k := entryKey{name: name}
	for _, o := range opts {
		if o != "prefetch" {
			return "", fmt.Errorf("entry %q: unknown option %q (want \"prefetch\")", name, o)
		}
		k.prefetch = true
	}
	if v, ok := s.entries.Load(k); ok {
		return v.(template.HTML), nil
	}
	h, err := s.assets.EntryTags(name, TagOptions{Nonce: t.token, PrefetchDynamic: k.prefetch})
	if err != nil {
		return "", err
	}
	s.entries.Store(k, h)
	return h, nil
}

// funcsFor binds the template functions to one snapshot.
func (t *Templates) funcsFor(s *snapshot) template.FuncMap {
	fm := template.FuncMap{}
	for k, v := range t.userFuncs {
		fm[k] = v
	}
	for k, v := range (template.FuncMap{
		"asset":     func(name string) (string, error) { return s.assets.URL(name) },
		"integrity": func(name string) (string, error) { return s.assets.Integrity(name) },
		"entry": func(name string, opts ...string) (template.HTML, error) {
			return t.entryHTML(s, name, opts)
		},
		"nonce":   func() string { return t.token },
		"buildID": func() string { return s.assets.BuildID() },
	}) {
		fm[k] = v
	}
	return fm
}
