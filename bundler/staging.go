package bundler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/assetctl/assetctl/manifest"
)

// staging is the temporary directory an output is written into before it
// replaces OUT_DIR whole. It sits beside OUT_DIR, so the swap is a rename
// on one file system, and a failed build never leaves a partial OUT_DIR.
type staging struct {
	dir, out  string
	committed bool
}

// newStaging creates the staging directory for out (and out's parent).
func newStaging(out string) (*staging, error) {
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create output parent: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("create temporary output: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("create temporary output: %w", err)
	}
	return &staging{dir: dir, out: out}, nil
}

// commit writes m as the output's manifest.json and swaps the finished
// output in for out, unless ctx has ended by then.
func (s *staging) commit(ctx context.Context, m *manifest.Manifest) error {
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.dir, manifest.FileName), data, 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := swapIn(s.dir, s.out); err != nil {
		return err
	}
	s.committed = true
	return nil
}

// discard removes the staging directory unless it was committed.
func (s *staging) discard() {
	if !s.committed {
		os.RemoveAll(s.dir)
	}
}
