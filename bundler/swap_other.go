//go:build !linux

package bundler

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// swapIn replaces out with the finished build in tmp.
func swapIn(tmp, out string) error {
	if _, err := os.Lstat(out); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(tmp, out); err != nil {
			return fmt.Errorf("move build into place: %w", err)
		}
		return nil
	}
	return swapByRename(tmp, out)
}
