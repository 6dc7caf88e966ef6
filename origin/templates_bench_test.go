package origin

import (
	"bytes"
	"html/template"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkRender renders product.html (layout, partial, two entries: 17
// asset tags with integrity, crossorigin and the nonce, plus a document
// title) through Templates.Render with a per-request nonce, against a
// baseline: a plain html/template whose asset tags are constant text,
// writing the same bytes. Both run in each iteration, timed separately,
// so machine noise hits both alike; "ratio" is origin time / baseline time.
func BenchmarkRender(b *testing.B) {
	a := testAssets(b)
	tm, err := LoadTemplates(filepath.Join("testdata", "templates"), a)
	if err != nil {
		b.Fatal(err)
	}
	const nonce = "cmVxdWVzdC1ub25jZQ=="
	rc := RenderContext{Assets: a, Nonce: nonce}
	data := pageData{Title: "Desk lamp <brass>"}

	// The baseline template is origin's own output with the document's
	// field put back as an action: the same bytes from constant text.
	var marked bytes.Buffer
	if err := tm.Render(&marked, "product.html", pageData{Title: "MARKER"}, rc); err != nil {
		b.Fatal(err)
	}
	base := template.Must(template.New("p").Parse(strings.ReplaceAll(marked.String(), "MARKER", "{{.Title}}")))
	var want, got bytes.Buffer
	if err := base.Execute(&want, data); err != nil {
		b.Fatal(err)
	}
	if err := tm.Render(&got, "product.html", data, rc); err != nil {
		b.Fatal(err)
	}
	if got.String() != want.String() {
		b.Fatalf("baseline and origin differ:\n%s\n---\n%s", want.String(), got.String())
	}
	if n := strings.Count(got.String(), "integrity="); n < 10 {
		b.Fatalf("the page has %d tags with integrity, want at least 10", n)
	}

	b.ReportAllocs()
	b.SetBytes(int64(got.Len()))
	var tBase, tOrigin time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if err := base.Execute(io.Discard, data); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := tm.Render(io.Discard, "product.html", data, rc); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		tBase += t1.Sub(t0)
		tOrigin += t2.Sub(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tBase.Nanoseconds())/n, "baseline-ns/op")
	b.ReportMetric(float64(tOrigin.Nanoseconds())/n, "origin-ns/op")
	b.ReportMetric(float64(tOrigin)/float64(tBase), "ratio")
}

// BenchmarkEntryTags is the direct API with a nonce (no template).
func BenchmarkEntryTags(b *testing.B) {
	a := testAssets(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.EntryTags("js/app.ts", TagOptions{Nonce: "cmVxdWVzdC1ub25jZQ=="}); err != nil {
			b.Fatal(err)
		}
	}
}
