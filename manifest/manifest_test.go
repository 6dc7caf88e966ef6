package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func hash(c byte) string { return strings.Repeat(string(c), 64) }

func sample() *Manifest {
	m := &Manifest{Version: Version, Files: map[string]File{
		"index.html":   {Path: "index.html", Hash: hash('a'), Size: 10, ContentType: "text/html; charset=utf-8", Kind: KindPage},
		"css/site.css": {Path: "css/site.bbbbbbbb.css", Hash: hash('b'), Size: 5, ContentType: "text/css; charset=utf-8", Immutable: true, Kind: KindAsset},
		"favicon.ico":  {Path: "favicon.cccccccc.ico", Alias: "favicon.ico", Hash: hash('c'), Size: 3, ContentType: "image/x-icon", Immutable: true, Kind: KindAsset},
	}}
	m.BuildID = m.ComputeBuildID()
	return m
}

func TestRoundTripAndOutputs(t *testing.T) {
	m := sample()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := m.Marshal()
	if string(b) != string(b2) {
		t.Fatal("got different bytes for the same manifest, want deterministic encoding")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.BuildID != m.BuildID {
		t.Errorf("buildID: got %q, want %q", got.BuildID, m.BuildID)
	}
	var paths []string
	for _, o := range got.Outputs() {
		paths = append(paths, o.Path)
		if o.Path == "favicon.ico" && o.Immutable {
			t.Error("alias favicon.ico: got immutable, want mutable")
		}
	}
	want := "css/site.bbbbbbbb.css favicon.cccccccc.ico favicon.ico index.html"
	if strings.Join(paths, " ") != want {
		t.Errorf("outputs: got %v, want %s", paths, want)
	}
	if f, ok := got.Lookup("/css/site.css"); !ok || f.Path != "css/site.bbbbbbbb.css" {
		t.Errorf("lookup: got %+v %v", f, ok)
	}
}

func TestBuildIDChangesWithBytes(t *testing.T) {
	m := sample()
	before := m.ComputeBuildID()
	f := m.Files["css/site.css"]
	f.Hash = hash('d')
	m.Files["css/site.css"] = f
	if m.ComputeBuildID() == before {
		t.Fatal("got same build ID after a hash changed, want a new one")
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNotBuildOutput) {
		t.Fatalf("empty dir: got %v, want ErrNotBuildOutput", err)
	}
	cases := map[string]func(m *Manifest){
		"version":    func(m *Manifest) { m.Version = 99 },
		"buildID":    func(m *Manifest) { m.BuildID = "" },
		"escapes":    func(m *Manifest) { f := m.Files["index.html"]; f.Path = "../x.html"; m.Files["index.html"] = f },
		"duplicate":  func(m *Manifest) { f := m.Files["index.html"]; f.Path = "favicon.ico"; m.Files["index.html"] = f },
		"short hash": func(m *Manifest) { f := m.Files["index.html"]; f.Hash = "abc"; m.Files["index.html"] = f },
		"reserved":   func(m *Manifest) { f := m.Files["index.html"]; f.Path = FileName; m.Files["index.html"] = f },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			m := sample()
			mutate(m)
			b, _ := m.Marshal()
			var me *Error
			if _, err := Parse("dist/manifest.json", b); !errors.As(err, &me) || !strings.Contains(err.Error(), "dist/manifest.json") {
				t.Fatalf("got %v, want *Error naming the file", err)
			}
		})
	}
	if _, err := Parse("m.json", []byte("{not json")); err == nil || !strings.Contains(err.Error(), "invalid JSON") {
		t.Fatalf("got %v, want invalid JSON error", err)
	}
}
