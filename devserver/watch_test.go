package devserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitBatch is a correctness wait: it fails the test if no batch comes
// within a generous deadline, which only a broken watcher exceeds.
func waitBatch(t *testing.T, w *Watcher) Batch {
	t.Helper()
	select {
	case b, ok := <-w.Batches():
		if !ok {
			t.Fatalf("watcher stopped: %v", w.Err())
		}
		return b
	case <-time.After(20 * time.Second):
		t.Fatal("no change batch within 20s")
	}
	return Batch{}
}

// startWatcher starts a watcher for a test. Unless the test sets one, the
// quiet window is 200ms: each test's changes are several file operations
// meant as one batch, and a loaded machine can pause longer than the 30ms
// default between two of them.
func startWatcher(t *testing.T, opts WatchOptions) *Watcher {
	t.Helper()
	if opts.Debounce == 0 {
		opts.Debounce = 200 * time.Millisecond
	}
	w, err := NewWatcher(t.Context(), opts)
	if err != nil {
		t.Fatalf("NewWatcher: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// expectNext checks that the next batch holds exactly want. Tests that
// must show nothing else happened make one more change afterwards and
// expect only it: any unwanted batch would arrive first and fail.
func expectNext(t *testing.T, w *Watcher, want ...string) {
	t.Helper()
	b := waitBatch(t, w)
	if !slices.Equal(b.Paths, want) || b.All {
		t.Fatalf("batch: got %v (all=%v), want %v", b.Paths, b.All, want)
	}
}

func TestWatchNewSubdirectory(t *testing.T) {
	root := t.TempDir()
	w := startWatcher(t, WatchOptions{Root: root})

	// Created in one go, the files inside may land before the new
	// directories get their watches; they must be reported anyway.
	writeFiles(t, root, map[string]string{"blog/2026/post.html": "<p>hi</p>"})
	expectNext(t, w, "blog", "blog/2026", "blog/2026/post.html")
	if got := w.WatchedDirs(); !slices.Contains(got, "blog/2026") {
		t.Fatalf("watched dirs: got %v, want blog/2026 among them", got)
	}
	// A later change inside the new directory is seen through its watch.
	writeFiles(t, root, map[string]string{"blog/2026/post.html": "<p>edited</p>"})
	expectNext(t, w, "blog/2026/post.html")
}

func TestWatchRemovedDirectoryIsDropped(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"old/a.css": "a{}", "keep.css": "b{}"})
	w := startWatcher(t, WatchOptions{Root: root})
	if got := w.WatchedDirs(); !slices.Equal(got, []string{".", "old"}) {
		t.Fatalf("watched dirs: got %v, want [. old]", got)
	}
	if err := os.RemoveAll(filepath.Join(root, "old")); err != nil {
		t.Fatal(err)
	}
	expectNext(t, w, "old", "old/a.css")
	if got := w.WatchedDirs(); !slices.Equal(got, []string{"."}) {
		t.Fatalf("watched dirs after removal: got %v, want [.]", got)
	}
}

func TestWatchRenamedDirectory(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"a/x.css": "a{}"})
	w := startWatcher(t, WatchOptions{Root: root})
	if err := os.Rename(filepath.Join(root, "a"), filepath.Join(root, "b")); err != nil {
		t.Fatal(err)
	}
	expectNext(t, w, "a", "b", "b/x.css")
	if got := w.WatchedDirs(); !slices.Equal(got, []string{".", "b"}) {
		t.Fatalf("watched dirs after rename: got %v, want [. b]", got)
	}
	writeFiles(t, root, map[string]string{"b/x.css": "b{}"})
	expectNext(t, w, "b/x.css")
}

func TestWatchAtomicRenameSave(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"css/site.css": "body{color:red}"})
	w := startWatcher(t, WatchOptions{Root: root})

	// The save pattern of most editors and of os.CreateTemp+Rename: write a
	// temp file next to the target, then rename it over the target.
	saveAtomically := func(content string) {
		f, err := os.CreateTemp(filepath.Join(root, "css"), ".site.css.*")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(content); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.Name(), filepath.Join(root, "css", "site.css")); err != nil {
			t.Fatal(err)
		}
	}
	saveAtomically("body{color:blue}")
	expectNext(t, w, "css/site.css")
	// The file is still watched after its inode was replaced.
	saveAtomically("body{color:green}")
	expectNext(t, w, "css/site.css")
	writeFiles(t, root, map[string]string{"css/site.css": "body{color:black}"})
	expectNext(t, w, "css/site.css")

	// vim's default: rename the original to a ~ backup, write a new file,
	// delete the backup (after probing the directory with a 4913 file).
	target := filepath.Join(root, "css", "site.css")
	writeFiles(t, root, map[string]string{"css/4913": ""})
	os.Remove(filepath.Join(root, "css", "4913"))
	if err := os.Rename(target, target+"~"); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, root, map[string]string{"css/site.css": "body{color:white}"})
	os.Remove(target + "~")
	expectNext(t, w, "css/site.css")
}

func TestWatchTouch(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"index.html": "<p>x</p>"})
	w := startWatcher(t, WatchOptions{Root: root})
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(root, "index.html"), later, later); err != nil {
		t.Fatal(err)
	}
	expectNext(t, w, "index.html")
}

func TestWatchBurstIsOneBatch(t *testing.T) {
	root := t.TempDir()
	// A quiet window long enough that a loaded, race-enabled machine never
	// pauses that long between two writes of the burst.
	w := startWatcher(t, WatchOptions{Root: root, Debounce: 300 * time.Millisecond, MaxDelay: time.Minute})
	var want []string
	files := map[string]string{}
	for i := range 500 {
		name := fmt.Sprintf("d%d/f%03d.js", i%10, i)
		files[name] = fmt.Sprintf("export const n = %d;", i)
		want = append(want, name)
	}
	for d := range 10 {
		want = append(want, fmt.Sprintf("d%d", d))
	}
	slices.Sort(want)
	writeFiles(t, root, files)
	expectNext(t, w, want...)
	// Nothing else was queued: the next batch is just the next change.
	writeFiles(t, root, map[string]string{"after.txt": "x"})
	expectNext(t, w, "after.txt")
}

func TestWatchIgnoresTempFilesAndOutput(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "dist")
	writeFiles(t, root, map[string]string{"dist/index.html": "", ".git/HEAD": "", "node_modules/x/index.js": "", "index.html": ""})
	w := startWatcher(t, WatchOptions{Root: root, OutDir: out, Ignore: []string{"drafts/**"}})
	for _, d := range w.WatchedDirs() {
		if d != "." {
			t.Fatalf("watched dirs: got %v, want only the root", w.WatchedDirs())
		}
	}
	writeFiles(t, root, map[string]string{
		".index.html.swp":               "vim swap",
		".index.html.swx":               "vim swap",
		"4913":                          "vim probe",
		".#index.html":                  "emacs lock",
		"#index.html#":                  "emacs autosave",
		"index.html~":                   "backup",
		"index.html___jb_tmp___":        "jetbrains",
		"index.html___jb_old___":        "jetbrains",
		"dist/app.js":                   "output",
		"dist/new/page.html":            "output",
		".git/index":                    "git",
		"node_modules/x/package.json":   "{}",
		"drafts/wip.html":               "user-ignored",
		"drafts/deeper/more/notes.html": "user-ignored",
	})
	writeFiles(t, root, map[string]string{"index.html": "<h1>saved</h1>"})
	expectNext(t, w, "index.html")
}

func TestWatchPoll(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"a.css": "a{}", "gone.js": "x", "sub/b.js": "1"})
	w := startWatcher(t, WatchOptions{Root: root, Poll: true, PollInterval: 20 * time.Millisecond})
	if err := os.Remove(filepath.Join(root, "gone.js")); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, root, map[string]string{"a.css": "a{color:red}", "sub/new/c.js": "2", "x.swp": "ignored"})
	expectNext(t, w, "a.css", "gone.js", "sub/new/c.js")
}

func TestWatchLimitErrorExplainsFix(t *testing.T) {
	for _, tc := range []struct {
		errno   syscall.Errno
		setting string
	}{
		{syscall.ENOSPC, "fs.inotify.max_user_watches"},
		{syscall.EMFILE, "fs.inotify.max_user_instances"},
	} {
		t.Run(tc.setting, func(t *testing.T) {
			err := watchLimitError("/site/big", fmt.Errorf("add watch: %w", tc.errno))
			var wl *WatchLimitError
			if !errors.As(err, &wl) {
				t.Fatalf("got %T %v, want *WatchLimitError", err, err)
			}
			msg := err.Error()
			for _, want := range []string{"/site/big", "sudo sysctl " + tc.setting + "=", "--poll"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q: want it to contain %q", msg, want)
				}
			}
			if !errors.Is(err, tc.errno) {
				t.Errorf("errors.Is(err, %v): got false, want true", tc.errno)
			}
		})
	}
	if err := watchLimitError("/x", syscall.EACCES); !errors.Is(err, syscall.EACCES) {
		t.Errorf("other errors: got %v, want EACCES unchanged", err)
	} else if _, ok := err.(*WatchLimitError); ok {
		t.Errorf("EACCES: got *WatchLimitError, want it left as is")
	}
}

func TestIgnoreRules(t *testing.T) {
	r, err := newIgnoreRules("/site", "/site/dist", []string{"drafts/**", "**/*.psd"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rel  string
		want bool
	}{
		{"index.html", false},
		{"css/site.css", false},
		{"dist", true},
		{"dist/app.js", true},
		{"distant/app.js", false},
		{".git", true},
		{"sub/.git/config", true},
		{"node_modules/react/index.js", true},
		{".site.css.swp", true},
		{"css/.site.css.swo", true},
		{"4913", true},
		{"css/.#site.css", true},
		{"#site.css#", true},
		{"site.css~", true},
		{"site.css___jb_tmp___", true},
		{"drafts/a.html", true},
		{"art/logo.psd", true},
		{".well-known/security.txt", false},
		{"swap.js", false},
	} {
		t.Run(tc.rel, func(t *testing.T) {
			if got := r.Ignored(tc.rel); got != tc.want {
				t.Errorf("Ignored(%q): got %v, want %v", tc.rel, got, tc.want)
			}
		})
	}
	if _, err := newIgnoreRules("/site", "/site", nil); err == nil {
		t.Error("output dir == site dir: got nil error, want one")
	}
	if _, err := newIgnoreRules("/site", "", []string{"a/[b"}); err == nil || !strings.Contains(err.Error(), "a/[b") {
		t.Errorf("bad glob: got %v, want an error naming it", err)
	}
}
