package devserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchOptions configures a Watcher. The zero value of every field but Root
// is the default.
type WatchOptions struct {
	// Root is the directory watched recursively. Required.
	Root string
	// OutDir is the build output directory; when it lies inside Root it is
	// not watched. Default: none.
	OutDir string
	// Ignore lists extra doublestar globs, relative to Root, of paths that
	// never trigger a rebuild (e.g. "drafts/**"). Editor temp files, .git,
	// node_modules and OutDir are always ignored.
	Ignore []string
	// Debounce is how long the tree must be quiet after a change before a
	// batch is delivered, so a burst (git checkout, a formatter run) becomes
	// one batch. Default DefaultDebounce (30ms).
	Debounce time.Duration
	// MaxDelay caps how long a batch waits for quiet while changes keep
	// coming, so a never-ending stream still rebuilds. Default 2s.
	MaxDelay time.Duration
	// Poll walks the tree every PollInterval instead of using inotify, for
	// file systems without change notification (network mounts, some
	// containers and WSL set-ups). Default false.
	Poll bool
	// PollInterval is the polling period when Poll is set. Default 300ms.
	PollInterval time.Duration
	// Logger receives debug detail. Default: discard.
	Logger *slog.Logger
}

// DefaultDebounce is the quiet time that ends a burst of changes when
// WatchOptions.Debounce is zero: long enough for an editor's save or a git
// checkout to land in one batch, short enough not to be felt.
const DefaultDebounce = 30 * time.Millisecond

// Batch is a set of changed paths delivered by a Watcher.
type Batch struct {
	// Paths are the changed files and directories, relative to the root with
	// forward slashes, sorted and unique. Files created and deleted again
	// within the batch (an editor's temp file) are left out.
	Paths []string
	// All is set when the watcher lost track of events (the kernel queue
	// overflowed) and everything must be treated as changed.
	All bool
}

// WatchLimitError reports that the system ran out of inotify watches or
// instances. Its message says how to raise the limit.
type WatchLimitError struct {
	Path    string // the directory that could not be watched
	Setting string // the sysctl to raise
	Current int    // its current value, 0 if unknown
	Err     error
}

// Error says which limit was hit and how to raise it.
func (e *WatchLimitError) Error() string {
	cur := ""
	if e.Current > 0 {
		cur = fmt.Sprintf(" (now %d)", e.Current)
	}
	return fmt.Sprintf("watch %s: out of inotify watches: %s is too low%s; raise it with `sudo sysctl %s=524288` "+
		"(persist it in /etc/sysctl.d/), ignore big directories with --ignore, or use --poll: %v",
		e.Path, e.Setting, cur, e.Setting, e.Err)
}

// Unwrap returns the system call error (ENOSPC or EMFILE).
func (e *WatchLimitError) Unwrap() error { return e.Err }

// watchLimitError wraps err in a *WatchLimitError when it is the kernel
// refusing more inotify watches (ENOSPC) or instances (EMFILE).
func watchLimitError(path string, err error) error {
	var setting string
	switch {
	case errors.Is(err, syscall.ENOSPC):
		setting = "fs.inotify.max_user_watches"
	case errors.Is(err, syscall.EMFILE):
		setting = "fs.inotify.max_user_instances"
	default:
		return err
	}
	cur := 0
	if b, rerr := os.ReadFile("/proc/sys/" + strings.ReplaceAll(setting, ".", "/")); rerr == nil {
		fmt.Sscan(string(b), &cur)
	}
	return &WatchLimitError{Path: path, Setting: setting, Current: cur, Err: err}
}

// Watcher reports changes under a directory tree as debounced batches.
// fsnotify watches single directories, so Watcher adds every directory
// under the root, adds new ones as they appear and drops removed ones.
type Watcher struct {
	root   string
	rules  *ignoreRules
	opts   WatchOptions
	log    *slog.Logger
	out    chan Batch
	events chan change
	fsw    *fsnotify.Watcher // nil when polling

	mu      sync.Mutex
	watched map[string]bool // absolute directory paths with a watch

	cancel context.CancelFunc
	done   chan struct{}
	errMu  sync.Mutex
	err    error
}

// change is one raw observation: a path (relative, slash-separated) and
// whether the first thing seen of it was its creation.
type change struct {
	rel     string
	created bool
	all     bool
}

// NewWatcher starts watching opts.Root. It returns after every existing
// directory is watched (or the first poll snapshot is taken), so a change
// made after it returns is always reported. Close stops it; so does ctx.
func NewWatcher(ctx context.Context, opts WatchOptions) (*Watcher, error) {
	if opts.Root == "" {
		return nil, errors.New("watch: no root directory")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", opts.Root, err)
	}
	if st, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("watch %s: not a directory", root)
	}
	rules, err := newIgnoreRules(root, opts.OutDir, opts.Ignore)
	if err != nil {
		return nil, err
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 2 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 300 * time.Millisecond
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{
		root: root, rules: rules, opts: opts, log: log,
		out:     make(chan Batch),
		events:  make(chan change, 256),
		watched: map[string]bool{},
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	var source func(context.Context)
	if opts.Poll {
		p := newPoller(root, rules)
		if err := p.scan(ctx, nil); err != nil {
			cancel()
			return nil, err
		}
		source = func(ctx context.Context) { p.run(ctx, opts.PollInterval, w.events) }
	} else {
		fsw, err := fsnotify.NewBufferedWatcher(1024)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("start file watcher: %w", watchLimitError(root, err))
		}
		w.fsw = fsw
		if err := w.addTree(root, nil); err != nil {
			fsw.Close()
			cancel()
			return nil, err
		}
		source = w.readNotify
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); source(ctx) }()
	go func() { defer wg.Done(); w.coalesce(ctx) }()
	go func() {
		wg.Wait()
		if w.fsw != nil {
			w.fsw.Close()
		}
		close(w.out)
		close(w.done)
	}()
	return w, nil
}

// Batches delivers debounced change batches. While nobody receives, new
// changes merge into the pending batch. It is closed when the watcher stops.
func (w *Watcher) Batches() <-chan Batch { return w.out }

// Err is the first error met while running (a new directory that could
// not be watched, say), if any; the watcher keeps going after it.
func (w *Watcher) Err() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

// Close stops the watcher and waits for it.
func (w *Watcher) Close() error {
	w.cancel()
	<-w.done
	return w.Err()
}

// WatchedDirs lists the directories currently watched (relative, sorted);
// empty when polling.
func (w *Watcher) WatchedDirs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var dirs []string
	for d := range w.watched {
		dirs = append(dirs, w.rel(d))
	}
	sort.Strings(dirs)
	return dirs
}

func (w *Watcher) rel(abs string) string {
	r, err := filepath.Rel(w.root, abs)
	if err != nil {
		return filepath.ToSlash(abs)
	}
	return filepath.ToSlash(r)
}

// addTree watches dir and every directory below it. When found is not nil,
// each file and directory already inside is reported to it: what was
// written into a new directory before its watch existed would otherwise go
// unseen.
func (w *Watcher) addTree(dir string, found func(rel string)) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return fmt.Errorf("watch %s: %w", p, err)
		}
		rel := w.rel(p)
		if w.rules.Ignored(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			if found != nil {
				found(rel)
			}
			return nil
		}
		if found != nil && p != dir {
			found(rel)
		}
		if err := w.fsw.Add(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return watchLimitError(p, err)
		}
		w.mu.Lock()
		w.watched[p] = true
		w.mu.Unlock()
		return nil
	})
}

// dropTree forgets dir and the directories below it after it was removed
// or renamed away.
func (w *Watcher) dropTree(dir string) {
	w.mu.Lock()
	var gone []string
	for d := range w.watched {
		if d == dir || strings.HasPrefix(d, dir+string(filepath.Separator)) {
			gone = append(gone, d)
			delete(w.watched, d)
		}
	}
	w.mu.Unlock()
	for _, d := range gone {
		_ = w.fsw.Remove(d) // the kernel usually dropped it already
	}
}

func (w *Watcher) isWatched(dir string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.watched[dir]
}

// readNotify turns fsnotify events into changes until ctx ends.
func (w *Watcher) readNotify(ctx context.Context) {
	send := func(c change) bool {
		select {
		case w.events <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Warn("file watcher queue overflowed; rebuilding everything", "root", w.root)
				if !send(change{all: true}) {
					return
				}
				continue
			}
			w.log.Warn("file watcher error", "err", err)
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			rel := w.rel(ev.Name)
			if rel == "." || strings.HasPrefix(rel, "../") || w.rules.Ignored(rel) {
				continue
			}
			w.log.Debug("file event", "op", ev.Op.String(), "path", rel)
			switch {
			case ev.Has(fsnotify.Create):
				st, err := os.Lstat(ev.Name)
				if err == nil && st.IsDir() {
					var files []string
					if err := w.addTree(ev.Name, func(r string) { files = append(files, r) }); err != nil {
						w.log.Error("watch new directory", "err", err)
						w.setErr(err)
					}
					for _, f := range files {
						if !send(change{rel: f, created: true}) {
							return
						}
					}
				}
				if !send(change{rel: rel, created: true}) {
					return
				}
			case ev.Has(fsnotify.Remove), ev.Has(fsnotify.Rename):
				if w.isWatched(ev.Name) {
					w.dropTree(ev.Name)
				}
				if !send(change{rel: rel}) {
					return
				}
			case ev.Has(fsnotify.Write), ev.Has(fsnotify.Chmod):
				// Chmod covers `touch`, which people use to force a rebuild;
				// the builder finds the content unchanged and nothing reloads.
				if !send(change{rel: rel}) {
					return
				}
			}
		}
	}
}

func (w *Watcher) setErr(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// coalesce merges changes into batches: a batch is ready once no change
// arrived for Debounce, or MaxDelay after its first change. A ready batch
// that nobody has received yet keeps absorbing new changes.
func (w *Watcher) coalesce(ctx context.Context) {
	pending := map[string]bool{} // rel -> first seen as a creation
	all := false
	var ready *Batch
	var first, last time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false

	flush := func() {
		b := Batch{All: all}
		for rel, created := range pending {
			if created {
				// Created and gone again within the batch: a temp file.
				if _, err := os.Lstat(filepath.Join(w.root, filepath.FromSlash(rel))); errors.Is(err, fs.ErrNotExist) {
					continue
				}
			}
			b.Paths = append(b.Paths, rel)
		}
		pending, all, armed = map[string]bool{}, false, false
		if len(b.Paths) == 0 && !b.All {
			return
		}
		if ready != nil {
			b.Paths = append(b.Paths, ready.Paths...)
			b.All = b.All || ready.All
		}
		sort.Strings(b.Paths)
		b.Paths = compactStrings(b.Paths)
		ready = &b
	}
	for {
		var out chan Batch
		var next Batch
		if ready != nil {
			out, next = w.out, *ready
		}
		select {
		case <-ctx.Done():
			return
		case c := <-w.events:
			now := time.Now()
			if !armed {
				first, armed = now, true
			}
			last = now
			if c.all {
				all = true
			} else if _, seen := pending[c.rel]; !seen {
				pending[c.rel] = c.created
			}
			fire := last.Add(w.opts.Debounce)
			if cap := first.Add(w.opts.MaxDelay); cap.Before(fire) {
				fire = cap
			}
			timer.Reset(time.Until(fire))
		case <-timer.C:
			if armed {
				flush()
			}
		case out <- next:
			ready = nil
		}
	}
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
