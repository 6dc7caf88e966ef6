package uploader

import (
	"bytes"
	"compress/gzip"
	"testing"
	"time"

	"github.com/assetctl/assetctl/manifest"
)

func FuzzDecodeRecord(f *testing.F) {
	r := &Record{Version: recordVersion, BuildID: "abc", Time: time.Unix(0, 0).UTC(),
		Manifest: &manifest.Manifest{Version: 1, BuildID: "abc", Files: map[string]manifest.File{}}, Objects: map[string]RecordObject{"a.html": {Size: 1}}}
	good, err := r.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("not gzip"))
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(`{"version":1}`))
	zw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := decodeRecord("k", data)
		if err != nil {
			return
		}
		if len(rec.RawManifest) == 0 || rec.Version != recordVersion {
			t.Errorf("decodeRecord accepted a record without a manifest or with version %d", rec.Version)
		}
		_ = rec.Load() // must not panic

	})
}

func TestRecordRoundTrip(t *testing.T) {
	m := &manifest.Manifest{Version: 1, BuildID: "abc", Files: map[string]manifest.File{"a.html": {Path: "a.html",
		Hash: "0000000000000000000000000000000000000000000000000000000000000000", Size: 2, ContentType: "text/html"}}}
	r := &Record{Version: recordVersion, BuildID: "abc", Manifest: m, Objects: map[string]RecordObject{"a.html": {Size: 2, ETag: `"e"`}},
		Bodies: map[string][]byte{"h": []byte("hi")}, Sentinel: "a.html"}
	data, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRecord("k", data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Manifest != nil || got.Bodies != nil {
		t.Errorf("decodeRecord decoded the manifest or bodies eagerly")
	}
	if err := got.Load(); err != nil {
		t.Fatal(err)
	}
	if got.Manifest.Files["a.html"].Size != 2 || string(got.Bodies["h"]) != "hi" || got.Sentinel != "a.html" || got.Objects["a.html"].ETag != `"e"` {
		t.Errorf("round trip lost data: %+v", got)
	}
}

func TestRecordKey(t *testing.T) {
	k := recordKey("site/", time.Date(2026, 11, 26, 20, 0, 1, 5e6, time.UTC), "abc")
	if want := "site/.assetctl/deploys/20261126T200001.005Z-abc.json.gz"; k != want {
		t.Errorf("got %q, want %q", k, want)
	}
	for rel, want := range map[string]bool{".assetctl/deploys/x-abc.json.gz": true, ".assetctl/deploys/sub/x.json.gz": false, "index.html": false} {
		if got := isRecordKey(rel); got != want {
			t.Errorf("isRecordKey(%q): got %v, want %v", rel, got, want)
		}
	}
}
