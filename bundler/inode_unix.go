//go:build unix

package bundler

import (
	"io/fs"
	"syscall"
)

// inode is the file's inode number, so a file replaced by another of the
// same size and mtime still counts as changed.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino) // Ino is not uint64 on every unix
	}
	return 0
}
