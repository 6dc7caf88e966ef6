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
		Manifest: &manifest.Manifest{Version: 1, BuildID: "abc"}, Objects: map[string]RecordObject{"a.html": {Size: 1}}}
	good, err := r.encode()
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
		if err == nil && (rec.Manifest == nil || rec.Version != recordVersion) {
			t.Errorf("decodeRecord accepted a record without a manifest or with version %d", rec.Version)
		}
	})
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
