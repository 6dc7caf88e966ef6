package devserver

import (
	"path"
	"sort"
	"strings"

	"github.com/assetctl/assetctl/manifest"
)

// Action is what connected browsers are told to do after a rebuild.
type Action string

// The actions a rebuild can lead to.
const (
	ActionNone   Action = "none"   // no output changed
	ActionReload Action = "reload" // a page, script or other file changed: reload the page
	ActionCSS    Action = "css"    // only stylesheets changed: swap them in place
	ActionError  Action = "error"  // the build failed: show the overlay
)

// plan decides how browsers take a rebuild: stylesheets are swapped in place
// only when every changed source is a stylesheet and every changed output is
// a stylesheet, its source map, or a page (whose only change is then the
// re-pointed <link>); anything else reloads the page.
func plan(b Batch, old, cur *manifest.Manifest) (Action, []sheetSwap) {
	changed := changedOutputs(old, cur)
	if len(changed) == 0 && !b.All {
		return ActionNone, nil
	}
	if b.All || old == nil || len(b.Paths) == 0 {
		return ActionReload, nil
	}
	for _, p := range b.Paths {
		if !isCSS(p, "") {
			return ActionReload, nil
		}
	}
	for _, o := range changed {
		if !isCSS(o.Path, o.ContentType) && o.Kind != manifest.KindSourceMap && o.Kind != manifest.KindPage {
			return ActionReload, nil
		}
	}
	sheets := sheetSwaps(old, cur)
	if len(sheets) == 0 {
		return ActionReload, nil
	}
	return ActionCSS, sheets
}

func isCSS(p, contentType string) bool {
	if contentType != "" {
		return strings.HasPrefix(contentType, "text/css")
	}
	return strings.EqualFold(path.Ext(p), ".css")
}

// changedOutputs lists the outputs of cur that are new or whose bytes
// changed since old, and the outputs of old that are gone.
func changedOutputs(old, cur *manifest.Manifest) []manifest.Output {
	prev := map[string]manifest.Output{}
	if old != nil {
		for _, o := range old.Outputs() {
			prev[o.Path] = o
		}
	}
	var out []manifest.Output
	for _, o := range cur.Outputs() {
		if p, ok := prev[o.Path]; ok && p.Hash == o.Hash {
			delete(prev, o.Path)
			continue
		}
		delete(prev, o.Path)
		out = append(out, o)
	}
	for _, o := range prev {
		out = append(out, o)
	}
	return out
}

// sheetSwaps pairs each stylesheet output of old with its successor in cur:
// by source key (a renamed, re-hashed file), and by position in an entry's
// CSS list (the stylesheet esbuild emits for a JS entry).
func sheetSwaps(old, cur *manifest.Manifest) []sheetSwap {
	seen := map[sheetSwap]bool{}
	var out []sheetSwap
	add := func(from, to string, fromHash, toHash, integrity string) {
		if from == to && fromHash == toHash {
			return
		}
		s := sheetSwap{From: "/" + from, To: "/" + to, Integrity: integrity}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for key, nf := range cur.Files {
		of, ok := old.Files[key]
		if !ok {
			continue
		}
		if isCSS(nf.Path, nf.ContentType) && isCSS(of.Path, of.ContentType) {
			add(of.Path, nf.Path, of.Hash, nf.Hash, nf.Integrity)
		}
		for i := range min(len(of.CSS), len(nf.CSS)) {
			next := cur.Files[nf.CSS[i]]
			add(of.CSS[i], nf.CSS[i], old.Files[of.CSS[i]].Hash, next.Hash, next.Integrity)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From < out[j].From })
	return out
}
