package origin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template/parse"
)

// TemplateName is one constant name a template passes to asset, integrity
// or entry.
type TemplateName struct {
	File string // the template file, dir joined, as LoadTemplates reports it
	Line int
	Func string // asset, integrity or entry
	Name string // as written ("img/hero.jpg", "/css/site.css")
}

// TemplateNames are the constant names a templates directory uses, in
// file and line order, each occurrence once.
type TemplateNames struct {
	// Assets are the names passed to asset and integrity.
	Assets []TemplateName
	// Entries are the names passed to entry.
	Entries []TemplateName
}

// ReadTemplateNames parses every *.html file under dir, as LoadTemplates
// does, and returns the constant names its templates pass to asset,
// integrity and entry, with no manifest: what a build must publish for
// the origin to start. Names computed at render time ({{asset .Image}})
// are not known here. Functions the application adds (TemplateOptions.
// Funcs) need not be given: calls are not checked against a function
// list. Syntax errors are all reported, each naming file:line.
func ReadTemplateNames(dir string) (*TemplateNames, error) {
	srcs, names, err := readTemplateDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read template names: %w", err)
	}
	out := &TemplateNames{}
	var errs []error
	for _, name := range names {
		trees := map[string]*parse.Tree{}
		tr := parse.New(name)
		tr.Mode = parse.SkipFuncCheck
		if _, err := tr.Parse(srcs[name], "", "", trees); err != nil {
			errs = append(errs, parseError(dir, name, err))
			continue
		}
		var refs []ref
		for _, t := range trees {
			refs = append(refs, walkTree(t).refs...)
		}
		sort.Slice(refs, func(i, j int) bool { return refs[i].pos < refs[j].pos })
		for _, r := range refs {
			tn := TemplateName{File: filepath.Join(dir, name), Line: r.line, Func: r.fn, Name: r.name}
			if r.fn == "entry" {
				out.Entries = append(out.Entries, tn)
			} else {
				out.Assets = append(out.Assets, tn)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// readTemplateDir reads every *.html file under dir, keyed by its
// slash-separated path relative to dir, and returns the keys sorted.
func readTemplateDir(dir string) (map[string]string, []string, error) {
	srcs := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".html") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		srcs[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(srcs) == 0 {
		return nil, nil, fmt.Errorf("no *.html files in %s: check the templates directory", dir)
	}
	names := make([]string, 0, len(srcs))
	for name := range srcs {
		names = append(names, name)
	}
	sort.Strings(names)
	return srcs, names, nil
}

// parseError names the file of a parse error by its path, as
// "templates/x.html:3: unexpected EOF", rather than the parser's
// "template: x.html:3: ...".
func parseError(dir, name string, err error) error {
	if rest, ok := strings.CutPrefix(err.Error(), "template: "+name+":"); ok {
		return fmt.Errorf("parse template %s:%s", filepath.Join(dir, name), rest)
	}
	return fmt.Errorf("parse template %s: %w", filepath.Join(dir, name), err)
}
