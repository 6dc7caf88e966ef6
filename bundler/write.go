package bundler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/assetctl/assetctl/hasher"
	"github.com/assetctl/assetctl/manifest"
)

// digestResult is a file's hash and size.
type digestResult struct {
	digest hasher.Digest
	size   int64
}

// writer writes one build's nodes into a temporary directory.
type writer struct {
	b    *Builder
	p    *plan
	tmp  string
	dirs sync.Map // directories already created under tmp

	partials atomic.Int64 // names temporary files uniquely

	mu      sync.Mutex
	digests map[string]digestEntry // plain-file hashes for the next build

	prev map[string]manifest.File // the previous output's manifest, when this Builder has no cache yet
}

// write writes the plan into a temporary directory beside OutDir, adds
// manifest.json, and swaps it in for OutDir.
func (b *Builder) write(ctx context.Context, p *plan) (*manifest.Manifest, error) {
	st, err := newStaging(b.out)
	if err != nil {
		return nil, err
	}
	defer st.discard()
	tmp := st.dir
	w := &writer{b: b, p: p, tmp: tmp, digests: map[string]digestEntry{}}
	if len(b.digests) == 0 {
		if pm, err := manifest.Load(b.out); err == nil {
			w.prev = pm.Files
		}
	}
	if err := w.run(ctx); err != nil {
		return nil, err
	}
	m, err := w.manifest()
	if err != nil {
		return nil, err
	}
	if err := st.commit(ctx, m); err != nil {
		return nil, err
	}
	b.digests = w.digests
	return m, nil
}

// run writes every node, plain files on a worker pool and the rest as soon
// as everything they reference has its final name.
func (w *writer) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	var plain []*node
	sem := make(chan struct{}, w.b.workers)
	for _, n := range w.p.nodes {
		if n.mode == modePlain {
			plain = append(plain, n)
			continue
		}
		if n.group != nil && n.group.members[0] != n {
			continue // written with its group's first member
		}
		g.Go(func() error {
			deps := n.deps
			if n.group != nil {
				deps = n.group.outside()
			}
			for _, d := range deps {
				select {
				case <-d.done:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			select {
			case sem <- struct{}{}:
			case <-gctx.Done():
				return gctx.Err()
			}
			defer func() { <-sem }()
			if n.group != nil {
				return w.doGroup(gctx, n.group)
			}
			return w.do(gctx, n)
		})
	}
	feed := make(chan *node)
	g.Go(func() error {
		defer close(feed)
		for _, n := range plain {
			select {
			case feed <- n:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range w.b.workers {
		g.Go(func() error {
			for n := range feed {
				if err := w.do(gctx, n); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// do writes one node and records its manifest entry.
func (w *writer) do(ctx context.Context, n *node) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var (
		name string
		dr   digestResult
		err  error
	)
	switch n.mode {
	case modePlain:
		name, dr, err = w.plain(ctx, n)
	case modeJSMap:
		name, dr, err = w.jsMap(ctx, n)
	case modeBundle:
		name, dr, err = w.bytes(n, w.bundleBytes(n))
	default:
		var out []byte
		out, err = w.rewrite(n)
		if err == nil {
			name, dr, err = w.bytes(n, out)
		}
	}
	if err != nil {
		return err
	}
	if err := w.record(n, name, dr); err != nil {
		return err
	}
	close(n.done) // release the files waiting for this one's name
	return nil
}

// record fills in a written node's manifest entry (and its alias).
func (w *writer) record(n *node, name string, dr digestResult) error {
	f := manifest.File{
		Path: name, Hash: dr.digest.Hex(), Integrity: dr.digest.Integrity(), Size: dr.size,
		ContentType: contentType(name), Immutable: !n.keepName, Kind: n.kind,
	}
	if n.alias {
		f.Alias = n.src.rel
		if err := w.link(filepath.Join(w.tmp, filepath.FromSlash(name)), n.src.rel); err != nil {
			return err
		}
	}
	if n.mode == modeBundle {
		n.key = w.bundleKey(n, name)
		o := n.es
		for _, im := range o.imports {
			if d, ok := w.p.byES[im]; ok && path.Ext(im) == ".js" {
				f.Imports = append(f.Imports, d.file.Path)
			}
		}
		for _, im := range o.dynamic {
			if d, ok := w.p.byES[im]; ok {
				f.DynamicImports = append(f.DynamicImports, d.file.Path)
			}
		}
		for _, c := range n.css {
			f.CSS = append(f.CSS, c.file.Path)
		}
		if d, ok := w.p.byES[o.rel+".map"]; ok {
			f.SourceMap = d.file.Path
		}
	}
	n.file = f
	return nil
}

// bundleKey is the manifest key of a bundle output: the entry point's
// source path, or the output path for chunks, maps and copied files.
func (w *writer) bundleKey(n *node, name string) string {
	if n.kind == manifest.KindEntry {
		return n.es.entry
	}
	return name
}

// outName is the output path of a node whose bytes hash to d.
func (w *writer) outName(n *node, d hasher.Digest) string {
	switch {
	case n.keepName:
		return n.src.rel
	case n.mode == modeBundle:
		dir, base := path.Split(n.es.rel)
		stem, ext := hasher.SplitExt(base)
		return dir + finalStem(stem) + "." + d.Short() + ext
	}
	return hasher.Name(n.src.rel, d)
}

// plain copies a file byte for byte, hashing on the way. A file unchanged
// since the last build is hard-linked from the previous output instead.
func (w *writer) plain(ctx context.Context, n *node) (string, digestResult, error) {
	f := n.src
	// b.digests is only read during a build; the next set goes to w.digests.
	if de, ok := w.b.digests[f.rel]; ok && de.stat == f.stat {
		name := w.outName(n, de.hash.digest)
		if w.linkFromPrevious(name) {
			w.remember(f, de.hash)
			return name, de.hash, nil
		}
	}
	if pf, ok := w.prev[f.rel]; ok && pf.Size == f.stat.size && !n.keepName {
		// A previous build (of another process) wrote this file: hash the
		// source, and if the name is the same, link instead of copying.
		d, size, err := hasher.File(ctx, f.abs)
		if err != nil {
			return "", digestResult{}, fmt.Errorf("read %s: %w", f.rel, err)
		}
		dr := digestResult{digest: d, size: size}
		if name := w.outName(n, d); name == pf.Path && w.linkFromPrevious(name) {
			w.remember(f, dr)
			return name, dr, nil
		}
	}
	src, err := os.Open(f.abs)
	if err != nil {
		return "", digestResult{}, fmt.Errorf("read %s: %w", f.rel, err)
	}
	defer src.Close()
	name, dr, err := w.stream(ctx, n, src)
	if err != nil {
		return "", digestResult{}, fmt.Errorf("copy %s: %w", f.rel, err)
	}
	w.remember(f, dr)
	return name, dr, nil
}

func (w *writer) remember(f *srcFile, dr digestResult) {
	w.mu.Lock()
	w.digests[f.rel] = digestEntry{stat: f.stat, hash: dr}
	w.mu.Unlock()
}

// linkFromPrevious hard-links an output file of the previous build into
// the new one. Names carry content hashes, so the same name means the
// same bytes.
func (w *writer) linkFromPrevious(name string) bool {
	old := filepath.Join(w.b.out, filepath.FromSlash(name))
	dst := filepath.Join(w.tmp, filepath.FromSlash(name))
	if err := w.mkdirFor(dst); err != nil {
		return false
	}
	return os.Link(old, dst) == nil
}

// stream copies r into a temporary file in the output, hashing it, then
// renames it to its content-hashed name.
func (w *writer) stream(ctx context.Context, n *node, r io.Reader) (string, digestResult, error) {
	dir := w.tmp
	if n.src != nil {
		dir = filepath.Join(w.tmp, filepath.FromSlash(path.Dir(n.src.rel)))
	}
	if err := w.mkdir(dir); err != nil {
		return "", digestResult{}, err
	}
	// Hashing while copying guarantees the name matches the bytes written,
	// even if the source changes during the build.
	tf, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf(".partial-%d", w.partials.Add(1))), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", digestResult{}, err
	}
	d, size, err := hasher.Copy(ctx, tf, r)
	if cerr := tf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tf.Name())
		return "", digestResult{}, err
	}
	name := w.outName(n, d)
	dst := filepath.Join(w.tmp, filepath.FromSlash(name))
	if err := os.Rename(tf.Name(), dst); err != nil {
		os.Remove(tf.Name())
		return "", digestResult{}, err
	}
	return name, digestResult{digest: d, size: size}, nil
}

// jsMap copies a script with its sourceMappingURL rewritten.
func (w *writer) jsMap(ctx context.Context, n *node) (string, digestResult, error) {
	f := n.src
	m := n.jsMap
	res := &finalResolver{w: w, from: f.rel}
	r, err := res.resolve(ref{URL: m.url, Kind: refSourceMap})
	if err != nil {
		return "", digestResult{}, err
	}
	src, err := os.Open(f.abs)
	if err != nil {
		return "", digestResult{}, fmt.Errorf("read %s: %w", f.rel, err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil || fi.Size() < m.end {
		return "", digestResult{}, fmt.Errorf("read %s: changed during the build", f.rel)
	}
	newURL := m.url
	if r.URL != "" {
		newURL = r.URL
	}
	rd := io.MultiReader(io.NewSectionReader(src, 0, m.start), strings.NewReader(newURL),
		io.NewSectionReader(src, m.end, fi.Size()-m.end))
	return w.stream(ctx, n, rd)
}

// rewrite produces the output bytes of a page, stylesheet or web manifest.
func (w *writer) rewrite(n *node) ([]byte, error) {
	src, err := os.ReadFile(n.src.abs)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", n.src.rel, err)
	}
	var out bytes.Buffer
	out.Grow(len(src) + len(src)/8)
	res := &finalResolver{w: w, from: n.src.rel, page: n.mode == modePage}
	if err := rewriteAs(n.mode, &out, src, res); err != nil {
		return nil, locate(err, n.src.rel)
	}
	return out.Bytes(), nil
}

// bundleBytes is an esbuild output with the esbuild names of the outputs
// it references replaced by their final names.
func (w *writer) bundleBytes(n *node) []byte {
	return w.replaceMarkers(replaceNames(n.es.contents, n.deps))
}

// replaceMarkers puts the final URLs of the site files code imported in
// place of their markers: root-relative, or under BaseURL, as Vite does,
// so a page in any directory can use them.
func (w *writer) replaceMarkers(contents []byte) []byte {
	if !bytes.Contains(contents, []byte("assetctl-asset:")) {
		return contents
	}
	base := w.b.base
	if base == "" {
		base = "/"
	}
	return assetMarker.ReplaceAllFunc(contents, func(m []byte) []byte {
		raw, _ := hex.DecodeString(string(m[len("assetctl-asset:") : len(m)-1]))
		d := w.p.bySource[string(raw)]
		if d == nil {
			return m // reported while planning
		}
		return []byte(absoluteURL(base, d.file.Path, urlParts{}))
	})
}

// replaceNames replaces the esbuild names of deps in contents by their
// final names, in one pass. At each position the longest name wins, so
// app-X.js inside app-X.js.map is never touched.
func replaceNames(contents []byte, deps []*node) []byte {
	if len(deps) == 0 {
		return contents
	}
	pairs := make([]string, 0, 2*len(deps))
	for _, d := range deps {
		if d.es != nil { // site files imported for their URL are markers
			pairs = append(pairs, path.Base(d.es.rel), path.Base(d.file.Path))
		}
	}
	if len(pairs) == 0 {
		return contents
	}
	return []byte(strings.NewReplacer(pairs...).Replace(string(contents)))
}

// doGroup writes a cycle of bundle outputs (a chunk that dynamically
// imports the entry that imports it). Their names cannot all be hashes of
// their final bytes, so every member is named by one hash over the whole
// group's content (with outside references already final) and its own
// esbuild name: still content-addressed, still deterministic. Each
// member's manifest hash is of its final bytes as always.
func (w *writer) doGroup(ctx context.Context, g *group) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pre := make([][]byte, len(g.members))
	key := sha256.New()
	for i, m := range g.members {
		var outside []*node
		for _, d := range m.deps {
			if d.group != g {
				outside = append(outside, d)
			}
		}
		pre[i] = w.replaceMarkers(replaceNames(m.es.contents, outside))
		fmt.Fprintf(key, "%s\x00%d\x00", m.es.rel, len(pre[i]))
		key.Write(pre[i])
	}
	sum := key.Sum(nil)
	for _, m := range g.members {
		m.file.Path = w.outName(m, hasher.Bytes(append(append([]byte(nil), sum...), m.es.rel...)))
	}
	results := make([]digestResult, len(g.members))
	for i, m := range g.members {
		var inside []*node
		for _, d := range m.deps {
			if d.group == g {
				inside = append(inside, d)
			}
		}
		data := replaceNames(pre[i], inside)
		_, dr, err := w.writeNamed(m, m.file.Path, hasher.Bytes(data), data)
		if err != nil {
			return err
		}
		results[i] = dr
	}
	for i, m := range g.members {
		if err := w.record(m, m.file.Path, results[i]); err != nil {
			return err
		}
	}
	// The members share one done channel (see groupCycles): a page that
	// sees one written may look up the others.
	close(g.members[0].done)
	return nil
}

// bytes writes an in-memory output under its content-hashed name.
func (w *writer) bytes(n *node, data []byte) (string, digestResult, error) {
	d := hasher.Bytes(data)
	return w.writeNamed(n, w.outName(n, d), d, data)
}

// writeNamed writes an in-memory output whose digest is d under name.
func (w *writer) writeNamed(n *node, name string, d hasher.Digest, data []byte) (string, digestResult, error) {
	dst := filepath.Join(w.tmp, filepath.FromSlash(name))
	if err := w.mkdirFor(dst); err != nil {
		return "", digestResult{}, err
	}
	// O_EXCL: two nodes may produce the same asset (esbuild copied an
	// image the site also has); the name is the content, so the second
	// writer has nothing to add, and nothing reads the tree before every
	// writer is done.
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) && !n.keepName {
		return name, digestResult{digest: d, size: int64(len(data))}, nil
	}
	if err == nil {
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return "", digestResult{}, fmt.Errorf("write %s: %w", name, err)
	}
	return name, digestResult{digest: d, size: int64(len(data))}, nil
}

// link gives an output file a second name (a well-known alias).
func (w *writer) link(src, alias string) error {
	dst := filepath.Join(w.tmp, filepath.FromSlash(alias))
	if err := w.mkdirFor(dst); err != nil {
		return err
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

func (w *writer) mkdirFor(file string) error { return w.mkdir(filepath.Dir(file)) }

func (w *writer) mkdir(dir string) error {
	if _, ok := w.dirs.Load(dir); ok {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	w.dirs.Store(dir, true)
	return nil
}

// manifest assembles the manifest from the written nodes.
func (w *writer) manifest() (*manifest.Manifest, error) {
	m := &manifest.Manifest{Version: manifest.Version, BaseURL: w.b.opts.BaseURL, Files: map[string]manifest.File{}}
	byPath := map[string]string{}
	// Source files first: when esbuild copied a file the site also serves,
	// the source's entry names it and the copy is the same bytes.
	ordered := make([]*node, 0, len(w.p.nodes))
	for _, n := range w.p.nodes {
		if n.mode != modeBundle {
			ordered = append(ordered, n)
		}
	}
	for _, n := range w.p.nodes {
		if n.mode == modeBundle {
			ordered = append(ordered, n)
		}
	}
	for _, n := range ordered {
		if other, ok := byPath[n.file.Path]; ok {
			if n.mode == modeBundle && m.Files[other].Hash == n.file.Hash {
				continue
			}
			return nil, fmt.Errorf("%s and %s both produce %s: rename one of them", other, n.key, n.file.Path)
		}
		if _, dup := m.Files[n.key]; dup {
			return nil, fmt.Errorf("two outputs claim manifest key %q", n.key)
		}
		m.Files[n.key] = n.file
		byPath[n.file.Path] = n.key
		if n.file.Alias != "" {
			byPath[n.file.Alias] = n.key
		}
	}
	m.BuildID = m.ComputeBuildID()
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("build produced an inconsistent manifest: %w", err)
	}
	return m, nil
}

// checkOutDir refuses to replace a directory assetctl did not write.
func checkOutDir(out string) error {
	fi, err := os.Lstat(out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check output directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("output %s is not a directory: choose another -o", out)
	}
	if _, err := os.Stat(filepath.Join(out, manifest.FileName)); err == nil {
		return nil
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("check output directory: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s: %w (no %s): empty it or choose another -o", out, ErrNotBuildOutput, manifest.FileName)
	}
	return nil
}
