package devserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"
)

// poller detects changes by walking the tree and comparing each file's
// size, modification time and mode with the previous walk. It is the
// --poll fallback for file systems that do not deliver inotify events.
type poller struct {
	root  string
	rules *ignoreRules
	seen  map[string]fileStamp
}

type fileStamp struct {
	size  int64
	mtime time.Time
	mode  fs.FileMode
}

func newPoller(root string, rules *ignoreRules) *poller {
	return &poller{root: root, rules: rules}
}

// scan walks the tree once and sends a change for every path that is new,
// modified or gone since the last scan. The first scan (seen == nil) only
// records the tree.
func (p *poller) scan(ctx context.Context, events chan<- change) error {
	now := map[string]fileStamp{}
	err := filepath.WalkDir(p.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, _ := filepath.Rel(p.root, path)
		rel := filepath.ToSlash(r)
		if rel != "." && p.rules.Ignored(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed since the directory was read
		}
		now[rel] = fileStamp{size: info.Size(), mtime: info.ModTime(), mode: info.Mode()}
		return nil
	})
	if err != nil {
		return fmt.Errorf("poll %s: %w", p.root, err)
	}
	if p.seen != nil && events != nil {
		for rel, st := range now {
			old, ok := p.seen[rel]
			if ok && old == st {
				continue
			}
			select {
			case events <- change{rel: rel}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for rel := range p.seen {
			if _, ok := now[rel]; ok {
				continue
			}
			select {
			case events <- change{rel: rel}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	p.seen = now
	return nil
}

// run scans every interval until ctx ends.
func (p *poller) run(ctx context.Context, interval time.Duration, events chan<- change) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = p.scan(ctx, events) // a failed walk is retried next tick
		}
	}
}
