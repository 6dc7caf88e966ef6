package origin

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestReadTemplateNames reads the constant names with no manifest: every
// call form walkTree knows, defines and blocks included, application
// functions unknown to it, computed names skipped, in file and line order.
func TestReadTemplateNames(t *testing.T) {
	dir := writeTemplates(t, map[string]string{
		"_layout.html": "<!doctype html>\n" +
			`<link href="{{asset "css/site.css"}}" integrity="{{integrity "css/site.css"}}">` + "\n" +
			`{{block "content" .}}{{end}}`,
		"page.html": `{{define "content"}}` + "\n" +
			`{{entry "js/app.ts" "prefetch"}}` + "\n" +
			`<img src="{{"/img/a.png" | asset}}" alt="{{myTitle .}}">` + "\n" +
			`{{if .X}}<img src="{{asset .X}}">{{end}}` + "\n" +
			`{{end}}`,
	})
	got, err := ReadTemplateNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	layout, page := filepath.Join(dir, "_layout.html"), filepath.Join(dir, "page.html")
	wantAssets := []TemplateName{
		{File: layout, Line: 2, Func: "asset", Name: "css/site.css"},
		{File: layout, Line: 2, Func: "integrity", Name: "css/site.css"},
		{File: page, Line: 3, Func: "asset", Name: "/img/a.png"},
	}
	wantEntries := []TemplateName{{File: page, Line: 2, Func: "entry", Name: "js/app.ts"}}
	if !reflect.DeepEqual(got.Assets, wantAssets) {
		t.Errorf("Assets = %+v\nwant %+v", got.Assets, wantAssets)
	}
	if !reflect.DeepEqual(got.Entries, wantEntries) {
		t.Errorf("Entries = %+v\nwant %+v", got.Entries, wantEntries)
	}
}

// TestReadTemplateNamesErrors reports every unparsable file by path and
// line, and an empty directory as such.
func TestReadTemplateNamesErrors(t *testing.T) {
	dir := writeTemplates(t, map[string]string{
		"a.html": "<p>\n{{if .X}}\n",
		"b.html": "ok\n\n{{asset \"x\"\n",
		"c.html": `{{asset "fine.png"}}`,
	})
	_, err := ReadTemplateNames(dir)
	if err == nil {
		t.Fatal("want parse errors")
	}
	for _, want := range []string{filepath.Join(dir, "a.html") + ":3:", filepath.Join(dir, "b.html") + ":4:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := ReadTemplateNames(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no *.html files") {
		t.Errorf("empty directory: err = %v", err)
	}
}
