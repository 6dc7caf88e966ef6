package bundler

import "path"

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
	<-n.done // already closed: n is a dependency of the file being written
	out := resolved{URL: r.url(lr.parts, n.file.Path)}
	sri := !b.opts.NoSRI && (x.Kind == refScript || x.Kind == refEntry || x.Kind == refStylesheet)
	if sri && n.file.Immutable {
		out.Integrity = n.file.Integrity
	}
	if x.Kind == refEntry {
		for _, c := range n.css {
			<-c.done
			cr := cssRef{URL: r.url(lr.parts, c.file.Path)}
			if !b.opts.NoSRI {
				cr.Integrity = c.file.Integrity
			}
			out.CSS = append(out.CSS, cr)
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
