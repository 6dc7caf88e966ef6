package uploader

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// ErrInvalidPath is returned by an invalidator given a path that is not a
// URL path starting with "/".
var ErrInvalidPath = errors.New("invalid CDN path")

// cleanPaths checks that every path starts with "/" and returns them
// sorted and without duplicates. Paths are unescaped (as the file names
// are); each backend escapes them for its own API.
func cleanPaths(paths []string) ([]string, error) {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("%w %q: want a URL path starting with \"/\"", ErrInvalidPath, p)
		}
		if strings.ContainsAny(p, "\x00\r\n") {
			return nil, fmt.Errorf("%w %q: contains a NUL or line break", ErrInvalidPath, p)
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Combined sends every invalidation to several invalidators (say a
// CloudFront distribution and a Varnish edge) and waits for all of them.
type Combined struct {
	invs []Invalidator
}

var (
	_ Invalidator  = (*Combined)(nil)
	_ ViewerMapper = (*Combined)(nil)
)

// ViewerPaths concatenates the viewer paths of every invalidator that can
// tell them.
func (c *Combined) ViewerPaths(ctx context.Context, bucketPaths []string) ([]CDNPaths, error) {
	return cdnPaths(ctx, c.invs, bucketPaths)
}

// cdnPaths asks every invalidator that is a ViewerMapper for its viewer
// paths; others are reported with the bucket paths as given.
func cdnPaths(ctx context.Context, invs []Invalidator, bucketPaths []string) ([]CDNPaths, error) {
	var out []CDNPaths
	for _, inv := range invs {
		vm, ok := inv.(ViewerMapper)
		if !ok {
			out = append(out, CDNPaths{CDN: fmt.Sprintf("%T", inv), Source: "default", Paths: bucketPaths})
			continue
		}
		got, err := vm.ViewerPaths(ctx, bucketPaths)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// Combine returns an invalidator that fans out to invs, in parallel. Nil
// entries are dropped and nested Combined invalidators are flattened.
func Combine(invs ...Invalidator) *Combined {
	c := &Combined{}
	for _, inv := range invs {
		switch inv := inv.(type) {
		case nil:
		case *Combined:
			c.invs = append(c.invs, inv.invs...)
		default:
			c.invs = append(c.invs, inv)
		}
	}
	return c
}

// combinedSep separates the invalidators' IDs in a Combined ID. No
// backend's ID contains a space.
const combinedSep = " "

// Invalidate invalidates paths at every invalidator. All of them are tried
// even when one fails; the error joins every failure. The ID is the
// invalidators' IDs separated by spaces, in the order given to Combine.
func (c *Combined) Invalidate(ctx context.Context, paths []string, callerRef string) (string, error) {
	ids := make([]string, len(c.invs))
	errs := make([]error, len(c.invs))
	var wg sync.WaitGroup
	for i, inv := range c.invs {
		wg.Go(func() { ids[i], errs[i] = inv.Invalidate(ctx, paths, callerRef) })
	}
	wg.Wait()
	return strings.Join(ids, combinedSep), errors.Join(errs...)
}

// Wait waits until every invalidator has finished the invalidation id
// (as returned by Invalidate).
func (c *Combined) Wait(ctx context.Context, id string) error {
	if len(c.invs) == 0 {
		return nil
	}
	ids := strings.Split(id, combinedSep)
	if len(ids) != len(c.invs) {
		return fmt.Errorf("wait for invalidation %q: want %d space-separated IDs, one per invalidator, got %d", id, len(c.invs), len(ids))
	}
	errs := make([]error, len(c.invs))
	var wg sync.WaitGroup
	for i, inv := range c.invs {
		wg.Go(func() { errs[i] = inv.Wait(ctx, ids[i]) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
