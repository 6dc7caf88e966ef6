package devserver

import (
	"errors"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/assetctl/assetctl/manifest"
)

// manifestOf builds a manifest whose sources are their own outputs.
func manifestOf(hashes map[string]string) *manifest.Manifest {
	m := &manifest.Manifest{Version: manifest.Version, Files: map[string]manifest.File{}}
	for p, h := range hashes {
		kind := manifest.KindAsset
		if path.Ext(p) == ".html" {
			kind = manifest.KindPage
		}
		m.Files[p] = manifest.File{Path: p, Hash: h, Kind: kind, ContentType: contentType(p)}
	}
	return m
}

func TestPlan(t *testing.T) {
	// Hashed build: a CSS edit renames the stylesheet and re-points the page.
	hashedOld := &manifest.Manifest{Files: map[string]manifest.File{
		"index.html":      {Path: "index.html", Hash: "p1", Kind: manifest.KindPage, ContentType: "text/html; charset=utf-8"},
		"css/site.css":    {Path: "css/site.aaaa.css", Hash: "c1", Kind: manifest.KindAsset, ContentType: "text/css; charset=utf-8"},
		"js/app.ts":       {Path: "js/app.1111.js", Hash: "j1", Kind: manifest.KindEntry, ContentType: "text/javascript", CSS: []string{"js/app.bbbb.css"}},
		"js/app.bbbb.css": {Path: "js/app.bbbb.css", Hash: "b1", Kind: manifest.KindAsset, ContentType: "text/css"},
	}}
	hashedCSS := &manifest.Manifest{Files: map[string]manifest.File{
		"index.html":      {Path: "index.html", Hash: "p2", Kind: manifest.KindPage, ContentType: "text/html; charset=utf-8"},
		"css/site.css":    {Path: "css/site.cccc.css", Hash: "c2", Integrity: "sha256-c2", Kind: manifest.KindAsset, ContentType: "text/css; charset=utf-8"},
		"js/app.ts":       {Path: "js/app.1111.js", Hash: "j1", Kind: manifest.KindEntry, ContentType: "text/javascript", CSS: []string{"js/app.bbbb.css"}},
		"js/app.bbbb.css": {Path: "js/app.bbbb.css", Hash: "b1", Kind: manifest.KindAsset, ContentType: "text/css"},
	}}
	hashedBundleCSS := &manifest.Manifest{Files: map[string]manifest.File{
		"index.html":      {Path: "index.html", Hash: "p3", Kind: manifest.KindPage, ContentType: "text/html; charset=utf-8"},
		"css/site.css":    {Path: "css/site.aaaa.css", Hash: "c1", Kind: manifest.KindAsset, ContentType: "text/css; charset=utf-8"},
		"js/app.ts":       {Path: "js/app.1111.js", Hash: "j1", Kind: manifest.KindEntry, ContentType: "text/javascript", CSS: []string{"js/app.dddd.css"}},
		"js/app.dddd.css": {Path: "js/app.dddd.css", Hash: "b2", Integrity: "sha256-b2", Kind: manifest.KindAsset, ContentType: "text/css"},
	}}
	plainOld := manifestOf(map[string]string{"index.html": "p", "a.css": "1", "b.css": "1", "app.js": "1"})
	plainCSS := manifestOf(map[string]string{"index.html": "p", "a.css": "2", "b.css": "1", "app.js": "1"})
	plainJS := manifestOf(map[string]string{"index.html": "p", "a.css": "1", "b.css": "1", "app.js": "2"})
	plainBoth := manifestOf(map[string]string{"index.html": "p", "a.css": "2", "b.css": "1", "app.js": "2"})

	for _, tc := range []struct {
		name     string
		batch    Batch
		old, cur *manifest.Manifest
		want     Action
		sheets   []sheetSwap
	}{
		{"css edit, unhashed", Batch{Paths: []string{"a.css"}}, plainOld, plainCSS, ActionCSS, []sheetSwap{{From: "/a.css", To: "/a.css"}}},
		{"css edit, hashed rename", Batch{Paths: []string{"css/site.css"}}, hashedOld, hashedCSS, ActionCSS, []sheetSwap{{From: "/css/site.aaaa.css", To: "/css/site.cccc.css", Integrity: "sha256-c2"}}},
		{"css imported by a js entry", Batch{Paths: []string{"js/app.css"}}, hashedOld, hashedBundleCSS, ActionCSS, []sheetSwap{{From: "/js/app.bbbb.css", To: "/js/app.dddd.css", Integrity: "sha256-b2"}}},
		{"js edit", Batch{Paths: []string{"app.js"}}, plainOld, plainJS, ActionReload, nil},
		{"css source but js output changed", Batch{Paths: []string{"a.css"}}, plainOld, plainBoth, ActionReload, nil},
		{"css and js sources", Batch{Paths: []string{"a.css", "app.js"}}, plainOld, plainBoth, ActionReload, nil},
		{"page edit", Batch{Paths: []string{"index.html"}}, plainOld, manifestOf(map[string]string{"index.html": "q", "a.css": "1", "b.css": "1", "app.js": "1"}), ActionReload, nil},
		{"no output change", Batch{Paths: []string{"app.js"}}, plainOld, plainOld, ActionNone, nil},
		{"events lost", Batch{All: true}, plainOld, plainOld, ActionReload, nil},
		{"no previous build", Batch{Paths: []string{"a.css"}}, nil, plainCSS, ActionReload, nil},
		{"new stylesheet", Batch{Paths: []string{"c.css"}}, plainOld, manifestOf(map[string]string{"index.html": "p", "a.css": "1", "b.css": "1", "app.js": "1", "c.css": "1"}), ActionReload, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, sheets := plan(tc.batch, tc.old, tc.cur)
			if got != tc.want || !slices.Equal(sheets, tc.sheets) {
				t.Fatalf("got %q %v, want %q %v", got, sheets, tc.want, tc.sheets)
			}
		})
	}
}

func TestRebuildString(t *testing.T) {
	at := time.Date(2026, 11, 26, 20, 31, 2, 0, time.UTC)
	for _, tc := range []struct {
		name string
		r    Rebuild
		want string
	}{
		{"initial", Rebuild{Time: at, Initial: true, Duration: 41 * time.Millisecond, Files: 12, Action: ActionReload}, "20:31:02 initial build: built in 41ms, 12 files"},
		{"css", Rebuild{Time: at, Changed: []string{"css/site.css"}, Duration: 3 * time.Millisecond, Files: 12, Action: ActionCSS, Clients: 1}, "20:31:02 css/site.css: built in 3ms, 12 files, styles swapped in 1 tab"},
		{"many", Rebuild{Time: at, Changed: []string{"a", "b", "c", "d", "e"}, Duration: time.Millisecond, Files: 9, Action: ActionReload, Clients: 2}, "20:31:02 a, b, c and 2 more: built in 1ms, 9 files, reloaded 2 tabs"},
		{"unchanged", Rebuild{Time: at, Changed: []string{"a.js"}, Duration: time.Millisecond, Files: 9, Action: ActionNone}, "20:31:02 a.js: built in 1ms, 9 files, output unchanged"},
		{"error", Rebuild{Time: at, Changed: []string{"js/app.js"}, Duration: 2 * time.Millisecond, Err: errors.New("x"),
			Messages: []Message{{File: "js/app.js", Line: 3, Column: 7, Text: `Expected ";" but found "}"`}}},
			"20:31:02 js/app.js: build failed in 2ms\n  js/app.js:3:7: Expected \";\" but found \"}\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.String(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if n := strings.Count(tc.r.String(), "\n"); n != len(tc.r.Messages) {
				t.Fatalf("lines: got %d extra, want one per message", n)
			}
		})
	}
}
