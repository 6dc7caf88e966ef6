package bundler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// findPublic resolves the public directory: the one given, or "public"
// under the site root when it exists.
func (b *Builder) findPublic(dir string) error {
	given := dir != ""
	if !given {
		dir = "public"
	}
	abs := dir
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(b.site, dir)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !given:
		return nil
	case err != nil:
		return fmt.Errorf("public directory %s: %w: check --public-dir", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("public directory %s is not a directory: check --public-dir", dir)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if abs == b.site || within(b.site, abs) {
		return fmt.Errorf("public directory %s contains the site directory: choose a directory inside it", dir)
	}
	if abs == b.outReal || within(abs, b.outReal) || within(b.outReal, abs) {
		return fmt.Errorf("public directory %s overlaps the output directory: choose another -o", dir)
	}
	b.public = abs
	return nil
}

// walkPublic adds the public directory's files to files under the names
// they are served at (public/favicon.svg is favicon.svg). A public file
// with the name of a site file is an error naming both: one URL cannot
// serve two files.
func (b *Builder) walkPublic(ctx context.Context, files map[string]*srcFile) []Message {
	if b.public == "" {
		return nil
	}
	prefix := b.publicRel()
	var msgs []Message
	err := filepath.WalkDir(b.public, func(abs string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read public directory: %w", err)
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() {
			if d.Name() == "node_modules" || abs == b.outReal {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(b.public, abs)
		rel = filepath.ToSlash(rel)
		fi, err := os.Stat(abs) // follows links: a public file may be one
		if err != nil {
			msgs = append(msgs, Message{File: prefix + rel, Text: fmt.Sprintf("unreadable public file: %v", err)})
			return nil
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		if other, ok := files[rel]; ok {
			msgs = append(msgs, Message{File: prefix + rel, Text: fmt.Sprintf(
				"public file %s%s and %s are both served at /%s: rename or remove one of them", prefix, rel, other.rel, rel)})
			return nil
		}
		files[rel] = &srcFile{rel: rel, abs: abs, stat: statOf(fi), public: true}
		return nil
	})
	if err != nil {
		msgs = append(msgs, Message{File: prefix, Text: err.Error()})
	}
	return msgs
}

// publicRel is the public directory as a site-relative prefix with a
// trailing slash ("public/"), for messages.
func (b *Builder) publicRel() string {
	if rel, err := filepath.Rel(b.site, b.public); err == nil && !filepath.IsAbs(rel) && rel != ".." && !startsDotDot(rel) {
		return filepath.ToSlash(rel) + "/"
	}
	return b.public + "/"
}

func startsDotDot(rel string) bool {
	return len(rel) >= 3 && rel[:3] == ".."+string(filepath.Separator)
}
