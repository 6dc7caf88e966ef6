package cli

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/assetctl/assetctl/bundler"
	"github.com/assetctl/assetctl/origin"
)

// scriptEntryExts are the names an entry call gets a bundle for: they go
// to esbuild as entry points. Stylesheets and anything else are published
// as the files they are (with what they reference).
var scriptEntryExts = map[string]bool{".js": true, ".mjs": true, ".cjs": true, ".ts": true,
	".tsx": true, ".jsx": true, ".mts": true, ".cts": true}

// addTemplateRoots makes the build publish what the origin's templates
// in tplDir (relative to the site directory, or absolute) name, so
// assetctl serve starts on it: each constant entry name that is a script
// becomes an entry point, and every other name (asset, integrity, entry of
// a stylesheet) is published with what it references, as --include would.
// A name the site does not have is an error naming template:line, like a
// page's missing asset; with --missing-assets warn it is logged instead.
// The bundler knows nothing of templates (it does not import origin):
// this is where the two meet.
func addTemplateRoots(opts *bundler.Options, tplDir string, log *slog.Logger) error {
	dir := tplDir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(opts.SiteDir, dir) // as assetctl serve reads it
	}
	names, err := origin.ReadTemplateNames(dir)
	if err != nil {
		return fmt.Errorf("templates (serve: templates: %s): %w", tplDir, err)
	}
	public := opts.PublicDir
	if public == "" {
		public = "public"
	}
	if !filepath.IsAbs(public) {
		public = filepath.Join(opts.SiteDir, public)
	}
	entries, includes := map[string]bool{}, map[string]bool{}
	var missing []error
	all := slices.Concat(names.Entries, names.Assets)
	slices.SortStableFunc(all, func(a, b origin.TemplateName) int {
		return cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	for _, tn := range all {
		rel, err := templateRel(opts.SiteDir, public, tn.Name)
		if err != nil {
			missing = append(missing, fmt.Errorf("%s:%d: %w %q (in %s)", tn.File, tn.Line, err, tn.Name, tn.Func))
			continue
		}
		if rel == "" {
			continue // a public/ file: published under its own name anyway
		}
		ext := strings.ToLower(path.Ext(rel))
		if scriptEntryExts[ext] && (tn.Func == "entry" || ext != ".js" && ext != ".mjs" && ext != ".cjs") {
			if !entries[rel] {
				entries[rel] = true
				opts.Entries = append(opts.Entries, rel)
			}
			continue
		}
		if !includes[rel] {
			includes[rel] = true
			opts.Include = append(opts.Include, globQuote(rel))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if opts.MissingAssets == bundler.MissingWarn {
		for _, err := range missing {
			log.Warn(err.Error())
		}
		return nil
	}
	return fmt.Errorf("templates name files the site does not have (assetctl serve would not start):\n%w", errors.Join(missing...))
}

// templateRel resolves a template's asset name to the site file it
// names: its site-relative path, or "" for a file of the public
// directory. A name with no such file is an error.
func templateRel(site, public, name string) (string, error) {
	rel := path.Clean(strings.TrimPrefix(name, "/"))
	if rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", errors.New("asset outside the site directory")
	}
	if fi, err := os.Stat(filepath.Join(site, filepath.FromSlash(rel))); err == nil && fi.Mode().IsRegular() {
		return rel, nil
	}
	if fi, err := os.Stat(filepath.Join(public, filepath.FromSlash(rel))); err == nil && fi.Mode().IsRegular() {
		return "", nil
	}
	return "", errors.New("missing asset")
}

// globQuote escapes the doublestar metacharacters in a file name, so an
// Include pattern made of it matches that file only.
func globQuote(name string) string {
	var b strings.Builder
	for _, r := range name {
		if strings.ContainsRune(`\*?[]{}`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
