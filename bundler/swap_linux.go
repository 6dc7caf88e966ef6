package bundler

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// swapIn replaces out with the finished build in tmp. When out exists the
// two are exchanged atomically (renameat2 RENAME_EXCHANGE), so readers
// see the old build or the new one, never neither; then the old one goes.
func swapIn(tmp, out string) error {
	if _, err := os.Lstat(out); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(tmp, out); err != nil {
			return fmt.Errorf("move build into place: %w", err)
		}
		return nil
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, out, unix.RENAME_EXCHANGE); err != nil {
		return swapByRename(tmp, out)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove previous build: %w", err)
	}
	return nil
}
