package bundler

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// finalResolver is the resolver of the writing pass: every reference
// target has been written, so it knows the final names and integrity.
type finalResolver struct {
	w    *writer
	from string // the file being rewritten
	page bool   // pages get absolute URLs under BaseURL
}

func (r *finalResolver) resolve(x ref) (resolved, error) {
	b := r.w.b
	lr := b.lookup(r.w.p.files, r.from, x)
	if lr.msg != nil {
		if lr.missing && b.opts.MissingAssets == MissingWarn {
			return resolved{}, nil // warned about while planning
		}
		return resolved{}, &BuildError{Messages: []Message{*lr.msg}}
	}
	if lr.target == "" {
		return resolved{}, nil
	}
	n := r.w.p.nodeFor(lr.target)
	if n == nil {
		return resolved{}, nil // a source that has no output of its own (a .ts module)
	}
	if err := written(n); err != nil {
		return resolved{}, err
	}
	out := resolved{URL: r.url(lr.parts, n.file.Path)}
	sri := !b.opts.NoSRI && (x.Kind == refScript || x.Kind == refEntry || x.Kind == refStylesheet)
	if sri && n.file.Immutable {
		out.Integrity = n.file.Integrity
	}
	if x.Kind == refEntry {
		for _, c := range n.css {
			if err := written(c); err != nil {
				return resolved{}, err
			}
			cr := cssRef{URL: r.url(lr.parts, c.file.Path)}
			if !b.opts.NoSRI {
				cr.Integrity = c.file.Integrity
			}
			out.CSS = append(out.CSS, cr)
		}
		for _, im := range n.es.imports {
			c, ok := r.w.p.byES[im]
			if !ok || path.Ext(im) != ".js" {
				continue
			}
			if err := written(c); err != nil {
				return resolved{}, err
			}
			pr := cssRef{URL: r.otherURL(lr.parts, c.file.Path)}
			if !b.opts.NoSRI {
				pr.Integrity = c.file.Integrity
			}
			out.Preload = append(out.Preload, pr)
		}
	}
	return out, nil
}

// url is the reference to output path outPath, in the form it was
// written (relative or root-relative, query and fragment kept), or under
// BaseURL in pages.
func (r *finalResolver) url(parts urlParts, outPath string) string {
	if r.page && r.w.b.base != "" {
		return absoluteURL(r.w.b.base, outPath, parts)
	}
	return replaceBase(parts, path.Base(outPath))
}

// otherURL is a reference to an output in another directory than the one
// the reference was written for (a chunk linked from a page): root-relative
// if the reference was, else relative to the file being rewritten.
func (r *finalResolver) otherURL(parts urlParts, outPath string) string {
	if r.page && r.w.b.base != "" {
		return absoluteURL(r.w.b.base, outPath, urlParts{})
	}
	if strings.HasPrefix(parts.raw, "/") {
		return absoluteURL("/", outPath, urlParts{})
	}
	rel, err := filepath.Rel(filepath.FromSlash(path.Dir(r.from)), filepath.FromSlash(outPath))
	if err != nil {
		return absoluteURL("/", outPath, urlParts{})
	}
	return absoluteURL("", filepath.ToSlash(rel), urlParts{})
}

// written checks that a referenced node has its final name. The scheduler
// writes every file after the files it references, so this never waits;
// failing loudly beats blocking forever if that ever breaks.
func written(n *node) error {
	select {
	case <-n.done:
		return nil
	default:
		return fmt.Errorf("internal error: %s referenced before it was written", n.key)
	}
}
