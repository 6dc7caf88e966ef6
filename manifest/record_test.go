package manifest_test

import (
	"slices"
	"testing"
	"time"

	"github.com/assetctl/assetctl/manifest"
)

func TestRecordKeyLayout(t *testing.T) {
	k := manifest.RecordKey("site/", time.Date(2026, 11, 26, 20, 0, 1, 5e6, time.FixedZone("x", 3600)), "abc")
	if want := "site/.assetctl/deploys/20261126T190001.005Z-abc.json.gz"; k != want {
		t.Errorf("got %q, want %q", k, want)
	}
	for rel, want := range map[string]bool{
		".assetctl/deploys/x-abc.json.gz":     true,
		".assetctl/deploys/sub/x.json.gz":     false,
		".assetctl/pending/x-abc.json":        false,
		".assetctl/deploys/x-abc.json":        false,
		"index.html":                          false,
		"site/.assetctl/deploys/x-ab.json.gz": false, // relative to the prefix only
	} {
		if got := manifest.IsRecordKey(rel); got != want {
			t.Errorf("IsRecordKey(%q): got %v, want %v", rel, got, want)
		}
	}
}

// TestNewestRecord pins the rule every reader of the bucket applies: the
// newest record is the live build, and a rollback is a newer record.
func TestNewestRecord(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	keys := []string{
		manifest.RecordKey("p/", t0.Add(2*time.Minute), "bbbb"),                    // deploy of B
		manifest.RecordKey("p/", t0, "aaaa"),                                       // deploy of A
		manifest.RecordKey("p/", t0.Add(3*time.Minute), "aaaa"),                    // rollback to A
		manifest.RecordKey("p/", t0.Add(time.Minute+999*time.Millisecond), "cccc"), // same second as nothing else
	}
	newest := slices.MaxFunc(keys, manifest.CompareRecordKeys)
	if newest != keys[2] {
		t.Errorf("newest: got %s, want the rollback's record %s", newest, keys[2])
	}
	slices.SortFunc(keys, manifest.CompareRecordKeys)
	want := []string{"aaaa", "cccc", "bbbb", "aaaa"}
	for i, k := range keys {
		if got := k[len(k)-len("aaaa.json.gz"):][:4]; got != want[i] {
			t.Errorf("order[%d]: got build %s, want %s (%v)", i, got, want[i], keys)
		}
	}
	// Same millisecond: ordered by build ID, the same for every reader.
	a, b := manifest.RecordKey("", t0, "aaaa"), manifest.RecordKey("", t0, "bbbb")
	if manifest.CompareRecordKeys(a, b) >= 0 || manifest.CompareRecordKeys(b, a) <= 0 || manifest.CompareRecordKeys(a, a) != 0 {
		t.Errorf("same-millisecond records are not ordered by build ID")
	}
	// The prefix does not take part (a reader may hold keys with or without it).
	if manifest.CompareRecordKeys("x/"+b, a) <= 0 {
		t.Errorf("the prefix changed the order")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	m := &manifest.Manifest{Version: 1, BuildID: "abc", Files: map[string]manifest.File{"a.html": {Path: "a.html",
		Hash: "0000000000000000000000000000000000000000000000000000000000000000", Size: 2, ContentType: "text/html"}}}
	r := &manifest.Record{Version: manifest.RecordVersion, BuildID: "abc", Time: time.Unix(5, 0).UTC(), Rollback: true, Manifest: m,
		Objects: map[string]manifest.RecordObject{"a.html": {Headers: manifest.Headers{ContentType: "text/html", SHA256: "00"}, Size: 2, ETag: `"e"`}},
		Bodies:  map[string][]byte{"h": []byte("hi")}, Sentinel: "a.html"}
	data, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := manifest.DecodeRecord("k", data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Manifest != nil || got.Bodies != nil {
		t.Errorf("DecodeRecord decoded the manifest or bodies eagerly")
	}
	gm, err := got.LoadManifest()
	if err != nil {
		t.Fatal(err)
	}
	if gm.BuildID != "abc" || got.Key != "k" || !got.Rollback {
		t.Errorf("got build %q key %q rollback %v, want abc k true", gm.BuildID, got.Key, got.Rollback)
	}
	if err := got.Load(); err != nil {
		t.Fatal(err)
	}
	if string(got.Bodies["h"]) != "hi" || got.Objects["a.html"].ContentType != "text/html" || got.Objects["a.html"].ETag != `"e"` {
		t.Errorf("round trip lost data: %+v", got)
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	bad := &manifest.Record{Version: manifest.RecordVersion, BuildID: "abc",
		Manifest: &manifest.Manifest{Version: 1, BuildID: "abc"}} // no files: invalid manifest
	data, err := bad.Encode()
	if err != nil {
		t.Fatal(err)
	}
	r, err := manifest.DecodeRecord("k", data)
	if err != nil {
		t.Fatalf("the envelope is valid: %v", err)
	}
	if _, err := r.LoadManifest(); err == nil {
		t.Errorf("LoadManifest accepted a manifest with no files")
	}
	if _, err := manifest.DecodeRecord("k", []byte("not gzip")); err == nil {
		t.Errorf("DecodeRecord accepted bytes that are not gzip")
	}
}
