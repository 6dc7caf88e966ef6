// Package benchproc times the child processes of the bench commands
// (internal/benchbuild, internal/benchvite): wall time and peak RSS of one
// run, and the median of several.
package benchproc

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"
)

// Run runs name with args in dir ("" for the current directory), its
// stderr on ours, and returns its wall time and peak RSS in KiB.
func Run(ctx context.Context, dir, name string, args ...string) (time.Duration, int64, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("run %s %v: %w", name, args, err)
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return d, rss, nil
}

// Median is the middle value of xs (the upper one of an even count); xs is
// not reordered. It panics on an empty slice.
func Median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
