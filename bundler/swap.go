package bundler

import (
	"fmt"
	"os"
)

// swapByRename replaces out with tmp by two renames, for file systems
// without an atomic exchange: out is missing only between the renames.
func swapByRename(tmp, out string) error {
	old := tmp + ".old"
	if err := os.Rename(out, old); err != nil {
		return fmt.Errorf("move previous build aside: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		_ = os.Rename(old, out)
		return fmt.Errorf("move build into place: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("remove previous build: %w", err)
	}
	return nil
}
