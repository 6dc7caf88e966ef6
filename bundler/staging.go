package bundler

import (
	"fmt"
	"os"
	"path/filepath"
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

// commit swaps the finished output in for out.
func (s *staging) commit() error {
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
