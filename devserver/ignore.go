package devserver

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// ignoredDirs are directory names never watched: version control metadata
// and installed dependencies (watching node_modules alone can exhaust the
// inotify watch limit, and its files change only on install).
var ignoredDirs = map[string]bool{
	".git": true, ".hg": true, ".svn": true, "node_modules": true,
}

// ignoreRules decides which paths under the site root are not sources:
// editor temp files, version control, the output directory and any globs
// the user adds. Paths are relative to the root, with forward slashes.
type ignoreRules struct {
	outDir string // relative to root; empty when the output is outside it
	globs  []string
}

func newIgnoreRules(root, outDir string, globs []string) (*ignoreRules, error) {
	r := &ignoreRules{}
	for _, g := range globs {
		if !doublestar.ValidatePattern(g) {
			return nil, fmt.Errorf("ignore pattern %q: not a valid glob (see https://github.com/bmatcuk/doublestar#patterns)", g)
		}
		r.globs = append(r.globs, g)
	}
	if outDir != "" {
		absRoot, err := filepath.Abs(root)
		if err != nil {
			return nil, fmt.Errorf("resolve site dir: %w", err)
		}
		absOut, err := filepath.Abs(outDir)
		if err != nil {
			return nil, fmt.Errorf("resolve output dir: %w", err)
		}
		if rel, err := filepath.Rel(absRoot, absOut); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			if rel == "." {
				return nil, fmt.Errorf("output dir %s is the site dir: pick another --out", outDir)
			}
			r.outDir = filepath.ToSlash(rel)
		}
	}
	return r, nil
}

// Ignored reports whether rel (slash-separated, relative to the root) is
// not a source whose change should trigger a rebuild.
func (r *ignoreRules) Ignored(rel string) bool {
	if rel == "." || rel == "" {
		return false
	}
	if r.outDir != "" && (rel == r.outDir || strings.HasPrefix(rel, r.outDir+"/")) {
		return true
	}
	for seg := range strings.SplitSeq(rel, "/") {
		if ignoredDirs[seg] {
			return true
		}
	}
	if isEditorTemp(path.Base(rel)) {
		return true
	}
	for _, g := range r.globs {
		if ok, _ := doublestar.Match(g, rel); ok {
			return true
		}
	}
	return false
}

// isEditorTemp matches the scratch files editors write next to the file
// being saved: vim swap files and its 4913 write probe, emacs lock and
// auto-save files, JetBrains safe-write files, ~ backups and OS litter.
func isEditorTemp(base string) bool {
	switch {
	case base == "4913", base == ".DS_Store", base == "Thumbs.db":
		return true
	case strings.HasSuffix(base, "~"):
		return true
	case strings.HasPrefix(base, ".#"): // emacs lock file
		return true
	case strings.HasPrefix(base, "#") && strings.HasSuffix(base, "#"): // emacs auto-save
		return true
	case strings.HasSuffix(base, "___jb_tmp___"), strings.HasSuffix(base, "___jb_old___"):
		return true
	}
	switch path.Ext(base) {
	case ".swp", ".swo", ".swx", ".swpx", ".tmp", ".crdownload":
		return true
	}
	// vim also uses .sw[a-p] once .swp is taken.
	if ext := path.Ext(base); len(ext) == 4 && strings.HasPrefix(ext, ".sw") && ext[3] >= 'a' && ext[3] <= 'p' && strings.HasPrefix(base, ".") {
		return true
	}
	return false
}
