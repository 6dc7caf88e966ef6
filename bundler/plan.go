package bundler

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/assetctl/assetctl/manifest"
)

// nodeMode says how a node's output bytes are made.
type nodeMode int

const (
	modePlain       nodeMode = iota // copied byte for byte
	modePage                        // HTML page, references rewritten, keeps its name
	modeCSS                         // stylesheet, references rewritten
	modeWebManifest                 // web app manifest, icon URLs rewritten
	modeJSMap                       // plain script whose sourceMappingURL comment is rewritten
	modeBundle                      // an esbuild output, chunk names rewritten
)

// node is one output file (plus its alias) and the outputs it references,
// which must be named before it.
type node struct {
	key      string // manifest key: source path, or final path for chunks and maps
	mode     nodeMode
	src      *srcFile
	es       *esOutput
	kind     manifest.Kind
	keepName bool // served under the source name only (pages, unreferenced well-known files)
	alias    bool // hashed name plus the source name (referenced well-known files)
	refs     []ref
	jsMap    *jsMapRef
	deps     []*node
	css      []*node // for entry points: the stylesheets a page must link
	group    *group  // the cycle of bundle outputs this node is part of, if any
	done     chan struct{}
	file     manifest.File // filled when the node is written
}

// plan is everything a build will write, in dependency order.
type plan struct {
	files    map[string]*srcFile
	nodes    []*node          // sorted by key
	bySource map[string]*node // assets and pages by source path
	entries  map[string]*node // entry-point bundles by source path
	byES     map[string]*node // bundle outputs by esbuild name
	omitted  []string         // source files left out (see prune)
}

// nodeFor is the node a reference to source path rel resolves to.
func (p *plan) nodeFor(rel string) *node {
	if n, ok := p.entries[rel]; ok {
		return n
	}
	return p.bySource[rel]
}

// scanEntry caches the references found in a rewritable file.
type scanEntry struct {
	stat  statKey
	refs  []ref
	jsMap *jsMapRef
}

// recorder is the resolver of the discovery pass: it notes references.
type recorder struct{ refs []ref }

func (r *recorder) resolve(x ref) (resolved, error) {
	r.refs = append(r.refs, x)
	return resolved{}, nil
}

// lookupResult is where a reference leads.
type lookupResult struct {
	parts   urlParts
	target  string   // source path of the referenced file; "" when left alone
	msg     *Message // a problem with the reference
	missing bool     // msg is a missing file (downgradable to a warning)
}

// lookup resolves reference r found in file from.
func (b *Builder) lookup(files map[string]*srcFile, from string, r ref) lookupResult {
	parts, ok := localURL(r.URL)
	if !ok {
		return lookupResult{}
	}
	rel, inside := resolveRel(from, parts.path)
	if !inside {
		return lookupResult{msg: &Message{File: from, Line: r.Line,
			Text: fmt.Sprintf("reference %q escapes the site root", strings.TrimSpace(r.URL))}}
	}
	if isDirURL(parts.path) || rel == "." {
		return lookupResult{} // a directory: a page route
	}
	f, exists := files[rel]
	switch {
	case exists && f.public:
		return lookupResult{} // served under the URL as written
	case exists && isPage(rel):
		return lookupResult{} // links between pages stay as they are
	case exists && r.Kind == refLink && b.keepsName(rel):
		return lookupResult{} // a link to robots.txt means robots.txt
	case exists:
		return lookupResult{parts: parts, target: f.rel}
	case r.Kind == refLink || r.Kind == refSourceMap:
		return lookupResult{} // may be a server route; a missing map is harmless
	}
	return lookupResult{missing: true, msg: &Message{File: from, Line: r.Line,
		Text: fmt.Sprintf("missing asset %q", strings.TrimSpace(r.URL))}}
}

func isPage(rel string) bool {
	ext := strings.ToLower(path.Ext(rel))
	return ext == ".html" || ext == ".htm"
}

// codeExts are sources esbuild consumes: when only a bundle uses them they
// are not copied to the output on their own.
var codeExts = map[string]bool{".js": true, ".mjs": true, ".cjs": true, ".ts": true, ".tsx": true,
	".jsx": true, ".mts": true, ".cts": true, ".css": true, ".json": true}

// plan scans the site, bundles the entry points, and lays out the nodes.
func (b *Builder) plan(ctx context.Context, files map[string]*srcFile) (*plan, error) {
	var pages, sheets, manifests, scripts []string
	for rel, f := range files {
		if f.public {
			continue // copied as it is
		}
		switch ext := strings.ToLower(path.Ext(rel)); {
		case isPage(rel):
			pages = append(pages, rel)
		case ext == ".css":
			sheets = append(sheets, rel)
		case ext == ".webmanifest":
			manifests = append(manifests, rel)
		case ext == ".js" || ext == ".mjs":
			scripts = append(scripts, rel)
		}
	}
	scans := map[string]scanEntry{}
	if err := b.scanAll(ctx, files, pages, modePage, scans); err != nil {
		return nil, err
	}
	entrySet, manifestSet, msgs := b.discover(files, pages, manifests, scans)
	if err := b.scanAll(ctx, files, sheets, modeCSS, scans); err != nil {
		return nil, err
	}
	if err := b.scanAll(ctx, files, sortedKeys(manifestSet), modeWebManifest, scans); err != nil {
		return nil, err
	}
	if err := b.scanAll(ctx, files, scripts, modeJSMap, scans); err != nil {
		return nil, err
	}
	b.scans = scans
	referenced, refMsgs := b.checkRefs(files, scans)
	if msgs = append(msgs, refMsgs...); len(msgs) > 0 {
		sortMessages(msgs)
		return nil, &BuildError{Messages: msgs}
	}
	es := &esResult{outputs: map[string]*esOutput{}, inputs: map[string]bool{}}
	if len(entrySet) > 0 {
		var err error
		if es, err = b.bundle(ctx, sortedKeys(entrySet)); err != nil {
			return nil, err
		}
	}
	p := &plan{files: files, bySource: map[string]*node{}, entries: map[string]*node{}, byES: map[string]*node{}}
	b.addSourceNodes(p, scans, es, entrySet, manifestSet, referenced)
	p.addBundleNodes(es, entrySet)
	b.linkSources(p)
	if err := p.linkAssets(); err != nil {
		return nil, err
	}
	for _, n := range p.bySource {
		p.nodes = append(p.nodes, n)
	}
	for _, n := range p.byES {
		p.nodes = append(p.nodes, n)
	}
	sort.Slice(p.nodes, func(i, j int) bool { return p.nodes[i].key < p.nodes[j].key })
	groupCycles(p.nodes)
	p.omitted = b.prune(p, es)
	if err := findCycle(p.nodes); err != nil {
		return nil, err
	}
	return p, nil
}

// scanAll scans files of one mode in parallel into scans.
func (b *Builder) scanAll(ctx context.Context, files map[string]*srcFile, rels []string, mode nodeMode, scans map[string]scanEntry) error {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.workers)
	for _, rel := range rels {
		g.Go(func() error {
			se, err := b.scan(gctx, files[rel], mode)
			if err != nil {
				return err
			}
			mu.Lock()
			scans[rel] = se
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// discover reads the entry points and web manifests off the pages, adds
// the configured entry points, and reports those that do not exist.
func (b *Builder) discover(files map[string]*srcFile, pages, manifests []string, scans map[string]scanEntry) (entries, webManifests map[string]bool, msgs []Message) {
	entries, webManifests = map[string]bool{}, map[string]bool{}
	for _, m := range manifests {
		webManifests[m] = true
	}
	for _, pg := range pages {
		for _, r := range scans[pg].refs {
			lr := b.lookup(files, pg, r)
			if lr.target == "" {
				continue
			}
			switch r.Kind {
			case refEntry:
				entries[lr.target] = true
			case refManifest:
				if ext := path.Ext(lr.target); ext == ".json" || ext == ".webmanifest" {
					webManifests[lr.target] = true
				}
			}
		}
	}
	for _, e := range b.opts.Entries {
		rel := cleanRel(e)
		if f, ok := files[rel]; !ok || f.public {
			msgs = append(msgs, Message{Text: fmt.Sprintf("entry point %q not found in the site directory", e)})
			continue
		}
		entries[rel] = true
	}
	return entries, webManifests, msgs
}

// checkRefs resolves every reference once, collecting every problem, and
// returns the set of files referenced other than as entry points.
func (b *Builder) checkRefs(files map[string]*srcFile, scans map[string]scanEntry) (map[string]bool, []Message) {
	referenced := map[string]bool{}
	var msgs []Message
	for rel, se := range scans {
		for _, r := range se.refs {
			lr := b.lookup(files, rel, r)
			if lr.msg != nil {
				if lr.missing && b.opts.MissingAssets == MissingWarn {
					b.log.Warn(lr.msg.String())
					continue
				}
				msgs = append(msgs, *lr.msg)
				continue
			}
			if lr.target != "" && r.Kind != refEntry {
				referenced[lr.target] = true
			}
		}
	}
	return referenced, msgs
}

// addSourceNodes makes a node for every source file that has an output of
// its own: pages, assets, stylesheets, web manifests. Bundled sources and
// TypeScript do not.
func (b *Builder) addSourceNodes(p *plan, scans map[string]scanEntry, es *esResult, entries, webManifests, referenced map[string]bool) {
	for rel, f := range p.files {
		ext := strings.ToLower(path.Ext(rel))
		n := &node{key: rel, src: f, kind: manifest.KindAsset, done: make(chan struct{})}
		switch {
		case f.public:
			n.keepName, n.kind = true, manifest.KindStatic
			p.bySource[rel] = n
			continue
		case isPage(rel):
			n.mode, n.kind, n.keepName = modePage, manifest.KindPage, true
		case entries[rel] || entryExts[ext]:
			continue // bundled: the entry node comes from esbuild's output
		case es.inputs[rel] && codeExts[ext] && !referenced[rel]:
			continue // consumed by a bundle and not used on its own
		case ext == ".css":
			n.mode = modeCSS
		case webManifests[rel]:
			n.mode = modeWebManifest
		case scans[rel].jsMap != nil && referencedMap(b, p.files, rel, scans[rel].jsMap):
			n.mode = modeJSMap
			n.jsMap = scans[rel].jsMap
		}
		if n.mode != modePage && b.keepsName(rel) {
			if referenced[rel] {
				n.alias = true
			} else {
				n.keepName, n.kind = true, manifest.KindStatic
			}
		}
		if n.mode != modePlain {
			n.refs = scans[rel].refs
		}
		p.bySource[rel] = n
	}
}

// addBundleNodes makes a node for every esbuild output and links each to
// the outputs it names: imports, its source map, its stylesheet, and files
// esbuild copied.
func (p *plan) addBundleNodes(es *esResult, entries map[string]bool) {
	for _, name := range sortedKeys(es.outputs) {
		o := es.outputs[name]
		n := &node{key: name, mode: modeBundle, es: o, kind: manifest.KindAsset, done: make(chan struct{})}
		switch {
		case isMap(name):
			n.kind = manifest.KindSourceMap
		case o.entry != "" && entries[o.entry]:
			n.kind, n.key = manifest.KindEntry, o.entry
			p.entries[o.entry] = n
		case path.Ext(name) == ".js":
			n.kind = manifest.KindChunk
		}
		p.byES[name] = n
	}
	var copied []*node // files esbuild copied: neither code nor maps
	for _, name := range sortedKeys(p.byES) {
		if ext := path.Ext(name); ext != ".js" && ext != ".css" && ext != ".map" {
			copied = append(copied, p.byES[name])
		}
	}
	for _, n := range p.byES {
		o := n.es
		seen := map[*node]bool{}
		add := func(name string) {
			if d, ok := p.byES[name]; ok && d != n && !seen[d] {
				seen[d] = true
				n.deps = append(n.deps, d)
			}
		}
		for _, im := range o.imports {
			add(im)
		}
		for _, im := range o.dynamic {
			add(im)
		}
		add(o.rel + ".map")
		if o.cssBundle != "" {
			add(o.cssBundle)
			if d, ok := p.byES[o.cssBundle]; ok {
				n.css = append(n.css, d)
			}
		}
		// Files esbuild copied (url() in bundled CSS, imported images) are
		// named in the bytes; the metafile does not always list them.
		for _, d := range copied {
			if !seen[d] && d != n && bytes.Contains(o.contents, []byte(path.Base(d.es.rel))) {
				seen[d] = true
				n.deps = append(n.deps, d)
			}
		}
		sort.Slice(n.deps, func(i, j int) bool { return n.deps[i].es.rel < n.deps[j].es.rel })
	}
}

// linkSources makes every rewritable source depend on the nodes its
// references lead to, and on the stylesheets of the entry points it loads.
func (b *Builder) linkSources(p *plan) {
	for _, n := range p.bySource {
		seen := map[*node]bool{}
		for _, r := range n.refs {
			lr := b.lookup(p.files, n.src.rel, r)
			if lr.target == "" {
				continue
			}
			d := p.nodeFor(lr.target)
			if d == nil || d == n || seen[d] {
				continue
			}
			seen[d] = true
			n.deps = append(n.deps, d)
			for _, c := range d.css {
				if !seen[c] {
					seen[c] = true
					n.deps = append(n.deps, c)
				}
			}
		}
	}
}

// linkAssets makes every bundle output depend on the site files its code
// imports for their URL (the markers vitePlugin leaves in place of them).
func (p *plan) linkAssets() error {
	var msgs []Message
	for _, name := range sortedKeys(p.byES) {
		n := p.byES[name]
		seen := map[*node]bool{}
		for _, m := range assetMarker.FindAllSubmatch(n.es.contents, -1) {
			raw, _ := hex.DecodeString(string(m[1]))
			rel := string(raw)
			d := p.bySource[rel]
			if d == nil {
				msgs = append(msgs, Message{File: rel, Text: "imported from code but excluded from the site: remove it from --exclude"})
				continue
			}
			if !seen[d] {
				seen[d] = true
				n.deps = append(n.deps, d)
			}
		}
	}
	if len(msgs) > 0 {
		sortMessages(msgs)
		return &BuildError{Messages: msgs}
	}
	return nil
}

// referencedMap reports whether a script's sourceMappingURL names a file
// of the site.
func referencedMap(b *Builder, files map[string]*srcFile, rel string, m *jsMapRef) bool {
	return b.lookup(files, rel, ref{URL: m.url, Kind: refSourceMap}).target != ""
}

// findCycle reports a reference cycle (a.css imports b.css imports a.css)
// as a *BuildError naming the files in order.
func findCycle(nodes []*node) error {
	const (
		white = iota
		grey
		black
	)
	color := map[*node]int{}
	var stack []*node
	var visit func(n *node) []*node
	visit = func(n *node) []*node {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range n.deps {
			if n.group != nil && d.group == n.group {
				continue // a cycle of bundle outputs, named together
			}
			switch color[d] {
			case grey:
				for i, s := range stack {
					if s == d {
						return append(append([]*node(nil), stack[i:]...), d)
					}
				}
			case white:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return nil
	}
	for _, n := range nodes {
		if color[n] != white {
			continue
		}
		if c := visit(n); c != nil {
			names := make([]string, len(c))
			for i, n := range c {
				names[i] = n.key
			}
			return &BuildError{Messages: []Message{{File: c[0].key,
				Text: "reference cycle: " + strings.Join(names, " -> ") + ": content hashes cannot be computed, break the cycle"}}}
		}
	}
	return nil
}

// scan finds the references in one rewritable file, from the cache when
// the file has not changed.
func (b *Builder) scan(ctx context.Context, f *srcFile, mode nodeMode) (scanEntry, error) {
	if se, ok := b.scans[f.rel]; ok && se.stat == f.stat {
		return se, nil
	}
	if err := ctx.Err(); err != nil {
		return scanEntry{}, err
	}
	se := scanEntry{stat: f.stat}
	if mode == modeJSMap {
		m, err := scanJSTail(f.abs, f.stat.size)
		if err != nil {
			return scanEntry{}, fmt.Errorf("read %s: %w", f.rel, err)
		}
		se.jsMap = m
		if m != nil {
			se.refs = []ref{{URL: m.url, Kind: refSourceMap}}
		}
		return se, nil
	}
	src, err := os.ReadFile(f.abs)
	if err != nil {
		return scanEntry{}, fmt.Errorf("read %s: %w", f.rel, err)
	}
	rec := &recorder{}
	var sink bytes.Buffer
	sink.Grow(len(src))
	if err := rewriteAs(mode, &sink, src, rec); err != nil {
		return scanEntry{}, locate(err, f.rel)
	}
	se.refs = rec.refs
	return se, nil
}

// rewriteAs runs the rewriter for a mode.
func rewriteAs(mode nodeMode, w *bytes.Buffer, src []byte, res resolver) error {
	switch mode {
	case modePage:
		return rewriteHTML(w, src, res)
	case modeCSS:
		return rewriteCSS(w, src, 1, res)
	case modeWebManifest:
		return rewriteWebManifest(w, src, res)
	}
	return fmt.Errorf("no rewriter for mode %d", mode)
}

// locate fills in the file of messages that lack one.
func locate(err error, rel string) error {
	if be, ok := err.(*BuildError); ok {
		for i := range be.Messages {
			if be.Messages[i].File == "" {
				be.Messages[i].File = rel
			}
		}
	}
	return err
}

// jsMapRef is the sourceMappingURL comment at the end of a script.
type jsMapRef struct {
	start, end int64 // byte range of the URL
	url        string
}

// scanJSTail finds a //# sourceMappingURL= comment on the last line of a
// script, reading only its end.
func scanJSTail(abs string, size int64) (*jsMapRef, error) {
	f, err := os.Open(abs)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n := min(size, 4096)
	tail := make([]byte, n)
	if _, err := f.ReadAt(tail, size-n); err != nil && err != io.EOF {
		return nil, err
	}
	const key = "sourceMappingURL="
	trimmed := bytes.TrimRight(tail, " \t\r\n")
	ls := bytes.LastIndexByte(trimmed, '\n') + 1
	last := trimmed[ls:]
	if !bytes.HasPrefix(last, []byte("//# "+key)) && !bytes.HasPrefix(last, []byte("//@ "+key)) {
		return nil, nil
	}
	u := last[4+len(key):]
	if len(u) == 0 || bytes.ContainsAny(u, " \t") {
		return nil, nil
	}
	start := size - n + int64(ls+4+len(key))
	return &jsMapRef{start: start, end: start + int64(len(u)), url: string(u)}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func filepathToSlash(p string) string { return strings.ReplaceAll(p, "\\", "/") }

// group is a cycle of bundle outputs, written together (see doGroup).
type group struct {
	members []*node // sorted by esbuild name
}

// outside lists the dependencies of the group's members that are not in
// the group.
func (g *group) outside() []*node {
	var out []*node
	seen := map[*node]bool{}
	for _, m := range g.members {
		for _, d := range m.deps {
			if d.group != g && !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// groupCycles finds the strongly connected components of bundle outputs
// (Tarjan's algorithm) and makes each one of more than one node a group.
// Only esbuild's outputs may form legitimate cycles (dynamic imports back
// into an entry); any other cycle is an error found by findCycle.
func groupCycles(nodes []*node) {
	index := map[*node]int{}
	low := map[*node]int{}
	onStack := map[*node]bool{}
	var stack []*node
	next := 0
	var strong func(n *node)
	strong = func(n *node) {
		index[n], low[n] = next, next
		next++
		stack = append(stack, n)
		onStack[n] = true
		for _, d := range n.deps {
			if d.mode != modeBundle {
				continue
			}
			if _, seen := index[d]; !seen {
				strong(d)
				low[n] = min(low[n], low[d])
			} else if onStack[d] {
				low[n] = min(low[n], index[d])
			}
		}
		if low[n] != index[n] {
			return
		}
		var members []*node
		for {
			m := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			onStack[m] = false
			members = append(members, m)
			if m == n {
				break
			}
		}
		if len(members) > 1 {
			sort.Slice(members, func(i, j int) bool { return members[i].es.rel < members[j].es.rel })
			g := &group{members: members}
			done := make(chan struct{})
			for _, m := range members {
				m.group, m.done = g, done
			}
		}
	}
	for _, n := range nodes {
		if _, seen := index[n]; !seen && n.mode == modeBundle {
			strong(n)
		}
	}
}
