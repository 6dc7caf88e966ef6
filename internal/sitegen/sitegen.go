// Package sitegen generates synthetic websites for benchmarks: a large
// site of many assets (pages, stylesheets that import each other and use
// images, binary files from a few KiB to hundreds of MiB) and a JS-heavy
// site of many TypeScript modules. Output is deterministic for a seed.
package sitegen

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// Options describe a generated site. Zero values take the defaults noted.
type Options struct {
	// Files is the total number of files (default 10,000).
	Files int
	// Bytes is the approximate total size (default 1 GiB).
	Bytes int64
	// Pages is the number of HTML pages (default 200).
	Pages int
	// Stylesheets is the number of CSS files (default 50).
	Stylesheets int
	// Large is the number of files of LargeSize, like videos (default 2).
	Large int
	// LargeSize is the size of each large file (default 128 MiB).
	LargeSize int64
	// Seed makes the content reproducible (default 1).
	Seed uint64
}

func (o *Options) defaults() {
	if o.Files == 0 {
		o.Files = 10000
	}
	if o.Bytes == 0 {
		o.Bytes = 1 << 30
	}
	if o.Pages == 0 {
		o.Pages = 200
	}
	if o.Stylesheets == 0 {
		o.Stylesheets = 50
	}
	if o.Large == 0 {
		o.Large = 2
	}
	if o.LargeSize == 0 {
		o.LargeSize = 128 << 20
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
}

// Site writes a large asset-heavy site into dir (which must not exist or
// be empty) and returns the number of files and bytes written.
func Site(ctx context.Context, dir string, o Options) (files int, bytes int64, err error) {
	o.defaults()
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	binaries := o.Files - o.Pages - o.Stylesheets - o.Large
	if binaries < 1 {
		return 0, 0, fmt.Errorf("files %d: want more than pages+stylesheets+large", o.Files)
	}
	// Small binaries share what is left after the large files, with sizes
	// spread between 1/8 and 15/8 of the mean.
	rest := o.Bytes - int64(o.Large)*o.LargeSize - int64(o.Pages)*6000 - int64(o.Stylesheets)*2000
	if rest < int64(binaries)*64 {
		return 0, 0, fmt.Errorf("bytes %d: too small for %d files", o.Bytes, o.Files)
	}
	mean := rest / int64(binaries)
	exts := []string{".png", ".jpg", ".webp", ".woff2", ".svg", ".json", ".pdf", ".mp3"}
	var assets []string
	w := &writer{dir: dir, rng: rng}
	for i := range binaries {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		name := fmt.Sprintf("assets/d%02d/file%05d%s", i%64, i, exts[i%len(exts)])
		size := mean/8 + rng.Int64N(mean*14/8+1)
		if err := w.random(name, size); err != nil {
			return 0, 0, err
		}
		assets = append(assets, name)
	}
	for i := range o.Large {
		if err := w.random(fmt.Sprintf("media/video%d.mp4", i), o.LargeSize); err != nil {
			return 0, 0, err
		}
	}
	pick := func() string { return assets[rng.IntN(len(assets))] }
	for i := range o.Stylesheets {
		var b strings.Builder
		if i > 0 {
			fmt.Fprintf(&b, "@import \"s%03d.css\";\n", i-1)
		}
		for j := range 12 {
			fmt.Fprintf(&b, ".c%d-%d { background: url(../%s) no-repeat; }\n", i, j, pick())
		}
		pad(&b, 2000)
		if err := w.text(fmt.Sprintf("css/s%03d.css", i), b.String()); err != nil {
			return 0, 0, err
		}
	}
	for i := range o.Pages {
		var b strings.Builder
		fmt.Fprintf(&b, "<!doctype html>\n<html><head><meta charset=utf-8><title>Page %d</title>\n", i)
		fmt.Fprintf(&b, "<link rel=\"stylesheet\" href=\"../css/s%03d.css\">\n</head><body>\n", rng.IntN(o.Stylesheets))
		for j := range 20 {
			fmt.Fprintf(&b, "<p>Paragraph %d of page %d.</p><img src=\"../%s\" alt=\"\">\n", j, i, pick())
		}
		fmt.Fprintf(&b, "<a href=\"p%04d.html\">next</a>\n", (i+1)%o.Pages)
		pad(&b, 6000)
		b.WriteString("</body></html>\n")
		if err := w.text(fmt.Sprintf("pages/p%04d.html", i), b.String()); err != nil {
			return 0, 0, err
		}
	}
	return w.files, w.bytes, nil
}

func pad(b *strings.Builder, n int) {
	for b.Len() < n {
		b.WriteString("<!-- padding to a realistic size -->\n")
	}
}

// JSOptions describe a generated JS-heavy site.
type JSOptions struct {
	// Entries is the number of pages, each with its own entry point
	// (default 20).
	Entries int
	// Modules is the number of shared TypeScript modules (default 2,000).
	Modules int
	// Seed makes the content reproducible (default 1).
	Seed uint64
}

// JSSite writes a site whose pages each load one TypeScript entry point
// importing many shared modules (with dynamic imports), and returns the
// entry points relative to dir.
func JSSite(ctx context.Context, dir string, o JSOptions) ([]string, error) {
	if o.Entries == 0 {
		o.Entries = 20
	}
	if o.Modules == 0 {
		o.Modules = 2000
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x75))
	w := &writer{dir: dir, rng: rng}
	for i := range o.Modules {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var b strings.Builder
		deps := []int{}
		for range 3 {
			if i > 0 {
				deps = append(deps, rng.IntN(i))
			}
		}
		for j, d := range deps {
			fmt.Fprintf(&b, "import { f%d as g%d } from \"./m%04d\";\n", d, j, d)
		}
		fmt.Fprintf(&b, "export interface Shape%d { id: number; name: string; tags: string[] }\n", i)
		fmt.Fprintf(&b, "export function f%d(x: number): number {\n  let acc = x;\n", i)
		for j := range deps {
			fmt.Fprintf(&b, "  acc += g%d(acc %% 7);\n", j)
		}
		fmt.Fprintf(&b, "  const items: Shape%d[] = Array.from({ length: 3 }, (_, k) => ({ id: k, name: `item-${k}`, tags: [\"a\", \"b\"] }));\n", i)
		b.WriteString("  return acc + items.reduce((s, it) => s + it.id + it.name.length, 0);\n}\n")
		if err := w.text(fmt.Sprintf("src/lib/m%04d.ts", i), b.String()); err != nil {
			return nil, err
		}
	}
	var entries []string
	for i := range o.Entries {
		var b strings.Builder
		for j := range 40 {
			m := rng.IntN(o.Modules)
			fmt.Fprintf(&b, "import { f%d as h%d } from \"./lib/m%04d\";\n", m, j, m)
		}
		b.WriteString("let total = 0;\n")
		for j := range 40 {
			fmt.Fprintf(&b, "total += h%d(%d);\n", j, j)
		}
		lazy := rng.IntN(o.Modules)
		fmt.Fprintf(&b, "document.addEventListener(\"click\", async () => { const m = await import(\"./lib/m%04d\"); console.log(m.f%d(total)); });\n", lazy, lazy)
		entry := fmt.Sprintf("src/page%02d.ts", i)
		if err := w.text(entry, b.String()); err != nil {
			return nil, err
		}
		entries = append(entries, entry)
		page := fmt.Sprintf("<!doctype html><title>JS %d</title><script type=\"module\" src=\"%s\"></script>\n", i, entry)
		if err := w.text(fmt.Sprintf("page%02d.html", i), page); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// writer writes generated files and counts them.
type writer struct {
	dir   string
	rng   *rand.Rand
	files int
	bytes int64
	buf   []byte
}

func (w *writer) create(name string) (*os.File, error) {
	p := filepath.Join(w.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	return os.Create(p)
}

func (w *writer) text(name, s string) error {
	f, err := w.create(name)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	w.files++
	w.bytes += int64(len(s))
	return f.Close()
}

// random writes size pseudo-random (incompressible) bytes.
func (w *writer) random(name string, size int64) error {
	f, err := w.create(name)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if w.buf == nil {
		w.buf = make([]byte, 64<<10)
	}
	for left := size; left > 0; {
		n := min(left, int64(len(w.buf)))
		for i := 0; i+8 <= int(n); i += 8 {
			v := w.rng.Uint64()
			for k := range 8 {
				w.buf[i+k] = byte(v >> (8 * k))
			}
		}
		if _, err := bw.Write(w.buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	w.files++
	w.bytes += size
	return f.Close()
}
