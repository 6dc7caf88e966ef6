package bundler

import (
	"path"
	"sort"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// prune drops the nodes nothing published leads to, so a build publishes
// what the site uses and nothing else: pages, public files, well-known
// names (and KeepNames), configured entry points and Include matches are
// published, with everything they reference, transitively. A README.md
// or tsconfig.app.json nobody links never gets a hashed name nobody can
// guess. It returns the source files left out: those with no published
// output that no bundle read either.
func (b *Builder) prune(p *plan, es *esResult) []string {
	reached := map[*node]bool{}
	var visit func(n *node)
	visit = func(n *node) {
		if reached[n] {
			return
		}
		reached[n] = true
		for _, d := range n.deps {
			visit(d)
		}
		if n.group != nil {
			for _, m := range n.group.members {
				visit(m)
			}
		}
	}
	for _, rel := range sortedKeys(p.bySource) {
		n := p.bySource[rel]
		if n.mode == modePage || n.keepName || n.alias || n.src.public || b.included(rel) {
			visit(n)
		}
	}
	for _, e := range b.opts.Entries {
		if n, ok := p.entries[cleanRel(e)]; ok {
			visit(n)
		}
	}
	for rel, n := range p.entries {
		if b.included(rel) {
			visit(n)
		}
	}
	kept := p.nodes[:0]
	for _, n := range p.nodes {
		if reached[n] {
			kept = append(kept, n)
		}
	}
	p.nodes = kept
	for rel, n := range p.bySource {
		if !reached[n] {
			delete(p.bySource, rel)
		}
	}
	for rel, n := range p.entries {
		if !reached[n] {
			delete(p.entries, rel)
		}
	}
	for name, n := range p.byES {
		if !reached[n] {
			delete(p.byES, name)
		}
	}
	var omitted []string
	for rel := range p.files {
		if p.bySource[rel] == nil && p.entries[rel] == nil && !es.inputs[rel] {
			omitted = append(omitted, rel)
		}
	}
	sort.Strings(omitted)
	return omitted
}

// included reports whether a site file matches an Include pattern.
func (b *Builder) included(rel string) bool {
	for _, pat := range b.opts.Include {
		if ok, _ := doublestar.Match(pat, rel); ok {
			return true
		}
	}
	return false
}

// cleanRel normalises a configured site-relative path ("./src/x.ts").
func cleanRel(p string) string {
	return path.Clean(strings.TrimPrefix(filepathToSlash(p), "./"))
}
