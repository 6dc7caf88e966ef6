package devserver

import (
	"fmt"
	"mime"
	"os"
	"path"
	"strings"

	"github.com/assetctl/assetctl/manifest"
)

// site is one build held in memory: what the server serves.
type site struct {
	buildID  string
	manifest *manifest.Manifest
	files    map[string]*servedFile // by output path, no leading slash
}

// servedFile is one output file ready to serve.
type servedFile struct {
	data        []byte // with the live-reload script injected, for pages
	contentType string
	hash        string
	immutable   bool
	page        bool
}

// loadSite reads every output the manifest lists from root (the output
// directory, opened with os.OpenRoot so no path, link or "..", can reach
// outside it). Files whose hash is unchanged since prev are reused.
func loadSite(root *os.Root, m *manifest.Manifest, prev *site) (*site, error) {
	s := &site{buildID: m.BuildID, manifest: m, files: map[string]*servedFile{}}
	if s.buildID == "" {
		s.buildID = m.ComputeBuildID()
	}
	for _, o := range m.Outputs() {
		ct := o.ContentType
		if ct == "" {
			ct = contentType(o.Path)
		}
		page := strings.HasPrefix(ct, "text/html")
		if p, ok := prev.file(o.Path); ok && p.hash == o.Hash && o.Hash != "" && !page {
			s.files[o.Path] = p
			continue
		}
		data, err := root.ReadFile(o.Path)
		if err != nil {
			return nil, fmt.Errorf("load build output %s: %w", o.Path, err)
		}
		if page {
			data = injectClient(data, s.buildID)
		}
		s.files[o.Path] = &servedFile{data: data, contentType: ct, hash: o.Hash, immutable: o.Immutable, page: page}
	}
	return s, nil
}

func (s *site) file(p string) (*servedFile, bool) {
	if s == nil {
		return nil, false
	}
	f, ok := s.files[p]
	return f, ok
}

// suggest names the built file a request for p probably meant: the output
// of source p (a page linking to an unhashed name), or an output with the
// same base name. It returns "" when nothing fits.
func (s *site) suggest(p string) string {
	if s == nil {
		return ""
	}
	if f, ok := s.manifest.Lookup(p); ok {
		return f.Path
	}
	stem := func(name string) string {
		base := path.Base(name)
		if i := strings.IndexByte(base, '.'); i > 0 {
			return base[:i]
		}
		return base
	}
	want, ext := stem(p), path.Ext(p)
	best := ""
	for out := range s.files {
		if stem(out) == want && path.Ext(out) == ext && (best == "" || out < best) {
			best = out
		}
	}
	return best
}

// webTypes fixes the types of the files a site is made of, so they do not
// depend on the machine's mime.types.
var webTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".map":         "application/json",
	".json":        "application/json",
	".webmanifest": "application/manifest+json",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/x-icon",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".txt":         "text/plain; charset=utf-8",
	".xml":         "application/xml",
	".wasm":        "application/wasm",
}

// contentType is the media type for a file name without a manifest type.
func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if ct, ok := webTypes[ext]; ok {
		return ct
	}
	if ct := mime.TypeByExtension(ext); ct != "" {
		return ct
	}
	return "application/octet-stream"
}
