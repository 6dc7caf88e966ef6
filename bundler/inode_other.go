//go:build !unix

package bundler

import "io/fs"

// inode is 0 where the platform has no inode numbers in fs.FileInfo (Windows):
// size and mtime alone then say whether a file changed.
func inode(fs.FileInfo) uint64 { return 0 }
