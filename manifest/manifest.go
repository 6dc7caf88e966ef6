// Package manifest is the contract between assetctl build, deploy and the
// origin server: it maps each source path of a site to the file the build
// wrote for it (content-hashed name, size, content type, integrity) and, for
// bundle entry points, the chunks and stylesheets they need.
//
// manifest.json looks like this (version 1):
//
//	{
//	  "version": 1,
//	  "buildID": "5d0c7e2a91b4f3c8",
//	  "files": {
//	    "index.html":      {"path": "index.html", "kind": "page", "immutable": false, ...},
//	    "css/site.css":    {"path": "css/site.3f9a1c2e.css", "kind": "asset", "immutable": true, ...},
//	    "js/app.ts":       {"path": "js/app.8d2f0b11.js", "kind": "entry", "immutable": true,
//	                        "imports": ["js/chunk.a1b2c3d4.js"], "css": ["js/app.77aa0c3e.css"], ...},
//	    "js/chunk.a1b2c3d4.js": {"path": "js/chunk.a1b2c3d4.js", "kind": "chunk", ...},
//	    "favicon.ico":     {"path": "favicon.4e5f6a7b.ico", "alias": "favicon.ico", ...}
//	  }
//	}
//
// Every file in the output directory except manifest.json itself is named
// exactly once, as some entry's Path or Alias. Files with no source of their
// own (chunks, source maps, bundle CSS) are keyed by their output path.
// The package imports nothing else of assetctl's.
package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Version is the manifest format this package reads and writes.
const Version = 1

// FileName is the manifest's name inside an output directory.
const FileName = "manifest.json"

// Kind says what role a file plays in the site.
type Kind string

// The kinds of file a manifest lists.
const (
	KindPage      Kind = "page"      // an HTML page: mutable, keeps its name
	KindAsset     Kind = "asset"     // any fingerprinted file copied or rewritten from the source
	KindEntry     Kind = "entry"     // a bundle entry point produced by esbuild
	KindChunk     Kind = "chunk"     // a shared or dynamic-import chunk produced by esbuild
	KindSourceMap Kind = "sourcemap" // a source map of a bundle output
	KindStatic    Kind = "static"    // a file served under its own name (robots.txt, /.well-known/*)
)

// Manifest is the parsed manifest.json.
type Manifest struct {
	// Version is the format version; Load refuses versions it does not know.
	Version int `json:"version"`
	// BuildID changes whenever any output byte changes (see ComputeBuildID).
	BuildID string `json:"buildID"`
	// BaseURL is the CDN base the build rewrote asset references to, if any.
	BaseURL string `json:"baseURL,omitempty"`
	// Files is keyed by the source path relative to the site root, with
	// forward slashes (or by output path for files without a source).
	Files map[string]File `json:"files"`
}

// File is one entry of Manifest.Files.
type File struct {
	// Path is the output path relative to the output directory.
	Path string `json:"path"`
	// Alias is a second, un-hashed output path holding the same bytes, for
	// well-known names browsers ask for directly (favicon.ico). It is
	// mutable like a page.
	Alias string `json:"alias,omitempty"`
	// Hash is the hex SHA-256 of the output bytes.
	Hash string `json:"hash"`
	// Integrity is the Subresource Integrity value ("sha256-<base64>").
	Integrity string `json:"integrity"`
	// Size is the output size in bytes.
	Size int64 `json:"size"`
	// ContentType is the media type to serve the file with.
	ContentType string `json:"contentType"`
	// Immutable is true for content-hashed names, false for pages and
	// names that must stay stable.
	Immutable bool `json:"immutable"`
	// Kind is the file's role.
	Kind Kind `json:"kind"`
	// Imports lists, for an entry or chunk, the output paths of the JS
	// chunks it statically imports (to preload).
	Imports []string `json:"imports,omitempty"`
	// DynamicImports lists the output paths of chunks it may load later.
	DynamicImports []string `json:"dynamicImports,omitempty"`
	// CSS lists, for an entry, the output paths of stylesheets it needs.
	CSS []string `json:"css,omitempty"`
	// SourceMap is the output path of this file's source map, if any.
	SourceMap string `json:"sourceMap,omitempty"`
}

// Output is one file in the output directory, as deploy sees it.
type Output struct {
	Path        string // relative to the output directory, forward slashes
	Source      string // the Files key it came from
	Hash        string
	Size        int64
	ContentType string
	Immutable   bool
	Kind        Kind
}

// Outputs lists every output file once, sorted by path: each entry's Path,
// plus its Alias (mutable) where it has one.
func (m *Manifest) Outputs() []Output {
	out := make([]Output, 0, len(m.Files))
	for src, f := range m.Files {
		out = append(out, Output{Path: f.Path, Source: src, Hash: f.Hash, Size: f.Size,
			ContentType: f.ContentType, Immutable: f.Immutable, Kind: f.Kind})
		if f.Alias != "" {
			out = append(out, Output{Path: f.Alias, Source: src, Hash: f.Hash, Size: f.Size,
				ContentType: f.ContentType, Immutable: false, Kind: KindStatic})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Lookup returns the entry for a source path ("css/site.css"); a leading
// slash is ignored.
func (m *Manifest) Lookup(source string) (File, bool) {
	f, ok := m.Files[strings.TrimPrefix(source, "/")]
	return f, ok
}

// ComputeBuildID derives a build ID from the output paths and hashes, so it
// changes whenever any output byte or name changes.
func (m *Manifest) ComputeBuildID() string {
	h := sha256.New()
	for _, o := range m.Outputs() {
		fmt.Fprintf(h, "%s\x00%s\n", o.Path, o.Hash)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Marshal encodes the manifest as indented JSON with sorted keys, so the
// same manifest always yields the same bytes.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// ErrNotBuildOutput means a directory has no manifest.json, so it is not the
// output of assetctl build.
var ErrNotBuildOutput = errors.New("not an assetctl build output")

// Error is a manifest that exists but is malformed or inconsistent.
type Error struct {
	Path string // the manifest file
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("manifest %s: %s", e.Path, e.Msg) }

// Load reads and validates OUT_DIR/manifest.json.
func Load(dir string) (*Manifest, error) {
	p := filepath.Join(dir, FileName)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (no %s: run assetctl build first)", dir, ErrNotBuildOutput, FileName)
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return Parse(p, data)
}

// Parse decodes and validates manifest bytes; name is used in errors.
func Parse(name string, data []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&m); err != nil {
		return nil, &Error{Path: name, Msg: "invalid JSON: " + err.Error()}
	}
	if err := m.Validate(); err != nil {
		return nil, &Error{Path: name, Msg: err.Error()}
	}
	return &m, nil
}

// Validate checks the manifest's internal consistency: a known version, a
// build ID, clean relative paths, and every output path named once.
func (m *Manifest) Validate() error {
	if m.Version != Version {
		return fmt.Errorf("format version %d is not supported (this assetctl reads version %d): rebuild with the same assetctl", m.Version, Version)
	}
	if m.BuildID == "" {
		return errors.New("missing buildID")
	}
	if len(m.Files) == 0 {
		return errors.New("no files")
	}
	seen := map[string]string{}
	claim := func(src, p, field string) error {
		if err := checkRelPath(p); err != nil {
			return fmt.Errorf("files[%q].%s: %w", src, field, err)
		}
		if p == FileName {
			return fmt.Errorf("files[%q].%s: path %q is reserved for the manifest", src, field, p)
		}
		if other, dup := seen[p]; dup {
			return fmt.Errorf("files[%q].%s: output %q is also claimed by files[%q]", src, field, p, other)
		}
		seen[p] = src
		return nil
	}
	keys := make([]string, 0, len(m.Files))
	for k := range m.Files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, src := range keys {
		f := m.Files[src]
		// A source may be called manifest.json (a web app manifest); only
		// an output path may not.
		if err := checkRelPath(src); err != nil {
			return fmt.Errorf("files key %q: %w", src, err)
		}
		if err := claim(src, f.Path, "path"); err != nil {
			return err
		}
		if f.Alias != "" {
			if err := claim(src, f.Alias, "alias"); err != nil {
				return err
			}
		}
		if len(f.Hash) != 64 {
			return fmt.Errorf("files[%q].hash: want 64 hex digits of SHA-256, got %q", src, f.Hash)
		}
		if _, err := hex.DecodeString(f.Hash); err != nil {
			return fmt.Errorf("files[%q].hash: %w", src, err)
		}
		if f.Size < 0 {
			return fmt.Errorf("files[%q].size: negative", src)
		}
		if f.ContentType == "" {
			return fmt.Errorf("files[%q].contentType: missing", src)
		}
	}
	return nil
}

func checkRelPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.Contains(p, "\\"):
		return fmt.Errorf("path %q uses backslashes", p)
	case path.IsAbs(p):
		return fmt.Errorf("path %q is absolute", p)
	case path.Clean(p) != p || p == "." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("path %q is not clean and relative", p)
	}
	return nil
}
