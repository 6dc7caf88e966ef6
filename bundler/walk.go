package bundler

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// srcFile is one file of the site.
type srcFile struct {
	rel  string // relative to the site root, forward slashes
	abs  string
	stat statKey
	// public files are served under their own name from the public
	// directory, copied as they are; rel is their URL path.
	public bool
}

// statKey identifies a file's content cheaply: if none of these changed,
// the bytes are taken to be the same.
type statKey struct {
	size  int64
	mtime int64
	ino   uint64
}

// rootConfigFiles are tool configuration at the site root, not site content.
var rootConfigFiles = map[string]bool{
	"assetctl.yaml": true, "package.json": true, "package-lock.json": true, "tsconfig.json": true,
	"jsconfig.json": true, "pnpm-lock.yaml": true, "yarn.lock": true, "bun.lockb": true, "deno.json": true,
}

// walk lists the site's files, refusing symlinks that leave the site.
func (b *Builder) walk(ctx context.Context) (map[string]*srcFile, error) {
	files := map[string]*srcFile{}
	var msgs []Message
	err := filepath.WalkDir(b.site, func(abs string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read site: %w", err)
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if abs == b.site {
			return nil
		}
		rel, _ := filepath.Rel(b.site, abs)
		rel = filepath.ToSlash(rel)
		name := d.Name()
		if d.IsDir() {
			if abs == b.outReal || abs == b.out || abs == b.public || name == "node_modules" || (rel == "dist" && b.viteProject()) || (strings.HasPrefix(name, ".") && !(name == ".well-known" && !strings.Contains(rel, "/"))) || b.excluded(rel) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(name, ".") && !strings.HasPrefix(rel, ".well-known/") || rootConfigFiles[rel] ||
			strings.HasSuffix(name, ".d.ts") || b.excluded(rel) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(abs)
			if err != nil {
				msgs = append(msgs, Message{File: rel, Text: fmt.Sprintf("broken symlink: %v", err)})
				return nil
			}
			if target != b.siteReal && !within(target, b.siteReal) {
				msgs = append(msgs, Message{File: rel, Text: fmt.Sprintf("symlink escapes the site root (points to %s): copy the file into the site instead", target)})
				return nil
			}
			fi, err := os.Stat(target)
			if err != nil {
				return fmt.Errorf("stat %s: %w", rel, err)
			}
			if !fi.Mode().IsRegular() {
				return nil // a directory link: its files are reached where they live
			}
			files[rel] = &srcFile{rel: rel, abs: abs, stat: statOf(fi)}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("stat %s: %w", rel, err)
		}
		files[rel] = &srcFile{rel: rel, abs: abs, stat: statOf(fi)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	msgs = append(msgs, b.walkPublic(ctx, files)...)
	if len(msgs) > 0 {
		sortMessages(msgs)
		return nil, &BuildError{Messages: msgs}
	}
	return files, nil
}

// viteProject reports whether the site is a Vite project (a vite.config.*
// at the root): its dist/ is vite build's output, not a source.
func (b *Builder) viteProject() bool {
	for _, ext := range []string{".js", ".ts", ".mjs", ".mts", ".cjs", ".cts"} {
		if _, err := os.Stat(filepath.Join(b.site, "vite.config"+ext)); err == nil {
			return true
		}
	}
	return false
}

func (b *Builder) excluded(rel string) bool {
	for _, p := range b.opts.Exclude {
		if ok, _ := doublestar.Match(p, rel); ok {
			return true
		}
	}
	return false
}

// keepsName reports whether a source path is served under its own name.
func (b *Builder) keepsName(rel string) bool {
	for _, p := range b.keep {
		if ok, _ := doublestar.Match(p, rel); ok {
			return true
		}
	}
	return false
}

func statOf(fi fs.FileInfo) statKey {
	return statKey{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: inode(fi)}
}
