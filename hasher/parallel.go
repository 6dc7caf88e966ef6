package hasher

import (
	"context"
	"runtime"

	"golang.org/x/sync/errgroup"
)

// Result is the hash of one file from Files.
type Result struct {
	Path   string
	Digest Digest
	Size   int64
}

// Files hashes the named files on up to workers goroutines (0 means one per
// CPU) and returns the results in the order of paths. Memory use is one
// copy buffer per worker, whatever the file sizes.
func Files(ctx context.Context, paths []string, workers int) ([]Result, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	out := make([]Result, len(paths))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i, p := range paths {
		g.Go(func() error {
			d, n, err := File(ctx, p)
			if err != nil {
				return err
			}
			out[i] = Result{Path: p, Digest: d, Size: n}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}
