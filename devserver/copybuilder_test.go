package devserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/evanw/esbuild/pkg/api"

	"github.com/assetctl/assetctl/bundler"
	"github.com/assetctl/assetctl/manifest"
)

// copyBuilder is a small real Builder for these tests: it copies the site
// into the output directory under unhashed names and checks every .js file
// with esbuild's Transform, so a syntax error fails the build with a real
// file, line and column. It stands in for bundler.Builder so the server can
// be tested on its own; cli wires the real one.
type copyBuilder struct {
	site, out string

	mu     sync.Mutex
	calls  [][]string // the changed list of every Build call
	failOn string     // when set, Build fails with this text
}

var _ Builder = (*copyBuilder)(nil)

func newCopyBuilder(t testing.TB, site string) *copyBuilder {
	t.Helper()
	return &copyBuilder{site: site, out: t.TempDir()}
}

func (c *copyBuilder) Build(ctx context.Context, changed ...string) (*manifest.Manifest, error) {
	c.mu.Lock()
	c.calls = append(c.calls, changed)
	fail := c.failOn
	c.mu.Unlock()
	if fail != "" {
		return nil, errors.New(fail)
	}
	m := &manifest.Manifest{Version: manifest.Version, Files: map[string]manifest.File{}}
	var msgs []bundler.Message
	err := filepath.WalkDir(c.site, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(c.site, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") || isEditorTemp(d.Name()) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if path.Ext(rel) == ".js" {
			res := api.Transform(string(data), api.TransformOptions{Loader: api.LoaderJS, Sourcefile: rel})
			for _, e := range res.Errors {
				m := bundler.Message{Text: e.Text}
				if e.Location != nil {
					m.File, m.Line, m.Column = e.Location.File, e.Location.Line, e.Location.Column+1
				}
				msgs = append(msgs, m)
			}
		}
		dst := filepath.Join(c.out, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		kind := manifest.KindStatic
		if path.Ext(rel) == ".html" {
			kind = manifest.KindPage
		}
		// ContentType is left empty on purpose: the server must type files
		// itself when a builder does not.
		m.Files[rel] = manifest.File{Path: rel, Hash: hex.EncodeToString(sum[:]), Size: int64(len(data)), Kind: kind}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(msgs) > 0 {
		return nil, &bundler.BuildError{Messages: msgs}
	}
	m.BuildID = m.ComputeBuildID()
	return m, nil
}

// changes returns the changed lists of the Build calls so far.
func (c *copyBuilder) changes() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]string(nil), c.calls...)
}

// writeFiles writes name → content under dir, creating directories.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// copyTree copies the fixture site src into a fresh temp dir.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
