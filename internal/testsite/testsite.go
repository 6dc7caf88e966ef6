// Package testsite writes synthetic assetctl build outputs (files plus a
// manifest.json made with the manifest package) for deploy tests and
// benchmarks, and checks a published site for pages that reference
// missing assets.
package testsite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/assetctl/assetctl/hasher"
	"github.com/assetctl/assetctl/manifest"
)

// Spec describes a synthetic site. Zero fields take the defaults noted.
type Spec struct {
	// Pages is the number of HTML pages. Default: 10.
	Pages int
	// Images is the number of fingerprinted images. Default: 20.
	Images int
	// ImageSize is the mean image size in bytes (sizes vary ±50%). Default: 4096.
	ImageSize int
	// Version changes every page's text and the JS bundle (hence its hashed name).
	Version int
	// PageEdits appends text to the pages with these indexes.
	PageEdits map[int]string
	// ImageEdits re-salts the images with these indexes (new bytes, new hashed name).
	ImageEdits map[int]string
	// Big adds one fingerprinted file of this many bytes (video/big.<hash>.bin).
	Big int64
}

// Write creates dir with the site's files and manifest, and returns the manifest.
func Write(dir string, s Spec) (*manifest.Manifest, error) {
	if s.Pages == 0 {
		s.Pages = 10
	}
	if s.Images == 0 {
		s.Images = 20
	}
	if s.ImageSize == 0 {
		s.ImageSize = 4096
	}
	m := &manifest.Manifest{Version: manifest.Version, Files: map[string]manifest.File{}}
	put := func(src, out string, data []byte, ct string, kind manifest.Kind, immutable bool) error {
		p := filepath.Join(dir, filepath.FromSlash(out))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
		d := hasher.Bytes(data)
		m.Files[src] = manifest.File{Path: out, Hash: d.Hex(), Integrity: d.Integrity(), Size: int64(len(data)),
			ContentType: ct, Immutable: immutable, Kind: kind}
		return nil
	}
	hashed := func(name, ext string, data []byte) string {
		return hasher.Name(name+ext, hasher.Bytes(data))
	}

	js := []byte(fmt.Sprintf("console.log('app v%d');\n", s.Version))
	jsPath := hashed("js/app", ".js", js)
	if err := put("js/app.ts", jsPath, js, "text/javascript", manifest.KindEntry, true); err != nil {
		return nil, err
	}
	css := []byte("body{margin:0}\n")
	cssPath := hashed("css/site", ".css", css)
	if err := put("css/site.css", cssPath, css, "text/css", manifest.KindAsset, true); err != nil {
		return nil, err
	}
	images := make([]string, s.Images)
	for i := range s.Images {
		rnd := rand.New(rand.NewPCG(uint64(i), 42))
		size := s.ImageSize/2 + rnd.IntN(s.ImageSize+1)
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rnd.Uint32())
		}
		if salt, ok := s.ImageEdits[i]; ok {
			copy(data, salt)
		}
		images[i] = hashed(fmt.Sprintf("img/i%04d", i), ".png", data)
		if err := put(fmt.Sprintf("img/i%04d.png", i), images[i], data, "image/png", manifest.KindAsset, true); err != nil {
			return nil, err
		}
	}
	if s.Big > 0 {
		f := filepath.Join(dir, "video-big.tmp")
		if err := writeBig(f, s.Big); err != nil {
			return nil, err
		}
		d, _, err := hasher.File(context.Background(), f)
		if err != nil {
			return nil, err
		}
		out := hasher.Name("video/big.bin", d)
		if err := os.MkdirAll(filepath.Join(dir, "video"), 0o755); err != nil {
			return nil, err
		}
		if err := os.Rename(f, filepath.Join(dir, filepath.FromSlash(out))); err != nil {
			return nil, err
		}
		m.Files["video/big.bin"] = manifest.File{Path: out, Hash: d.Hex(), Integrity: d.Integrity(), Size: s.Big,
			ContentType: "application/octet-stream", Immutable: true, Kind: manifest.KindAsset}
	}
	for i := range s.Pages {
		out := pagePath(i)
		var b strings.Builder
		fmt.Fprintf(&b, "<!doctype html><title>page %d v%d</title>\n", i, s.Version)
		fmt.Fprintf(&b, "<link rel=stylesheet href=\"/%s\">\n<script src=\"/%s\"></script>\n", cssPath, jsPath)
		if len(images) > 0 {
			fmt.Fprintf(&b, "<img src=\"/%s\">\n", images[i%len(images)])
		}
		b.WriteString(s.PageEdits[i])
		b.WriteString(strings.Repeat("<p>filler text for a realistic page size</p>\n", 20))
		if err := put(out, out, []byte(b.String()), "text/html", manifest.KindPage, false); err != nil {
			return nil, err
		}
	}
	robots := []byte("User-agent: *\n")
	if err := put("robots.txt", "robots.txt", robots, "text/plain", manifest.KindStatic, false); err != nil {
		return nil, err
	}
	m.BuildID = m.ComputeBuildID()
	data, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, manifest.FileName), data, 0o644); err != nil {
		return nil, err
	}
	return m, nil
}

// pagePath spreads pages over folders: index.html, docs/index.html, then docs/pN.html.
func pagePath(i int) string {
	switch i {
	case 0:
		return "index.html"
	case 1:
		return "docs/index.html"
	}
	return fmt.Sprintf("docs/s%d/p%d.html", i%7, i)
}

var ref = regexp.MustCompile(`(?:href|src)="/([^"]+)"`)

// References lists the site paths an HTML page of this package references.
func References(page []byte) []string {
	var out []string
	for _, m := range ref.FindAllSubmatch(page, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// BrokenPages checks invariant 2 over a published site given as key →
// bytes of its pages and the set of all keys: it returns "page -> missing
// asset" for every reference to a key that does not exist.
func BrokenPages(pages map[string][]byte, keys map[string]bool) []string {
	var broken []string
	for p, body := range pages {
		if path.Ext(p) != ".html" {
			continue
		}
		for _, r := range References(body) {
			if !keys[r] {
				broken = append(broken, p+" -> "+r)
			}
		}
	}
	sort.Strings(broken)
	return broken
}
