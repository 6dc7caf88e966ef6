package uploader_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/uploader"
)

// failAfter is a fault: it passes the invalidation on, then reports the
// connection lost, as when a deploy dies just after CloudFront accepted it.
type failAfter struct{ uploader.Invalidator }

var errLost = errors.New("connection lost after the request was sent")

func (f failAfter) Invalidate(ctx context.Context, paths []string, ref string) (string, error) {
	if _, err := f.Invalidator.Invalidate(ctx, paths, ref); err != nil {
		return "", err
	}
	return "", errLost
}

// Flipping between two builds (X, Y, X, Y, as rollbacks and re-releases
// do) invalidates every time, in moto's CloudFront; only the retry of an
// interrupted deploy reuses its invalidation.
func TestInvalidationPerFlip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	moto := testsvc.StartMoto(t)
	ctx := context.Background()
	dist := moto.CreateDistribution(t)
	cf := newCloudFront(t, moto, moto.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}})
	st := e.store(e.s3.Endpoint)
	d := e.deployer(st, uploader.Options{Invalidators: []uploader.Invalidator{cf}})
	dirX, _ := site(t, testsite.Spec{})
	dirY, _ := site(t, testsite.Spec{Version: 1})

	var ids []string
	for i, dir := range []string{dirX, dirY, dirX, dirY} {
		res, err := d.Deploy(ctx, dir)
		if err != nil {
			t.Fatalf("deploy %d: %v", i, err)
		}
		if len(res.Invalidations) != 1 {
			t.Fatalf("deploy %d: got invalidations %v, want 1", i, res.Invalidations)
		}
		ids = append(ids, res.Invalidations[0])
	}
	got := recordedBy(t, moto, dist)
	if len(got) != 4 {
		t.Fatalf("X, Y, X, Y: moto recorded %d invalidations %v, want 4", len(got), got)
	}
	refs := map[string]bool{}
	for _, r := range got {
		refs[r.Ref] = true
	}
	if len(refs) != 4 {
		t.Errorf("X, Y, X, Y: got %d distinct caller references %v, want 4", len(refs), slices.Collect(maps.Keys(refs)))
	}
	if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 4 {
		t.Errorf("X, Y, X, Y: got invalidation IDs %v, want 4 distinct", ids)
	}

	// A deploy of Z dies after CloudFront accepted its invalidation; its
	// rerun must find and reuse that invalidation, not pay for another.
	dirZ, _ := site(t, testsite.Spec{Version: 2})
	dying := e.deployer(st, uploader.Options{Invalidators: []uploader.Invalidator{failAfter{cf}}})
	if _, err := dying.Deploy(ctx, dirZ); !errors.Is(err, errLost) {
		t.Fatalf("interrupted deploy of Z: got %v, want %v", err, errLost)
	}
	if got := recordedBy(t, moto, dist); len(got) != 5 {
		t.Fatalf("after the interrupted deploy: moto recorded %d invalidations, want 5", len(got))
	}
	res, err := d.Deploy(ctx, dirZ)
	if err != nil {
		t.Fatalf("rerun of Z: %v", err)
	}
	after := recordedBy(t, moto, dist)
	if len(after) != 5 {
		t.Errorf("rerun of the interrupted deploy: moto recorded %d invalidations, want 5 (the interrupted one reused)", len(after))
	}
	if res.Plan.CallerRef != after[4].Ref {
		t.Errorf("rerun used caller reference %q, want the interrupted run's %q", res.Plan.CallerRef, after[4].Ref)
	}
	if left := e.inspect(uploader.PendingDir); len(left) != 0 {
		t.Errorf("pending markers left after the rerun: %v", slices.Collect(maps.Keys(left)))
	}
}

// A deploy whose invalidation fails has published its pages and exits
// with an error; the rerun (here a no-change redeploy) sends exactly that
// invalidation once, and the run after it sends nothing and writes nothing.
func TestPendingInvalidationCompletedByRerun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	moto := testsvc.StartMoto(t)
	ctx := context.Background()
	dist := moto.CreateDistribution(t)
	good := newCloudFront(t, moto, moto.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}})
	bad := newCloudFront(t, moto, moto.URL, uploader.CloudFrontOptions{DistributionIDs: []string{"EUNKNOWNDIST0"}})
	st := e.store(e.s3.Endpoint)
	d := e.deployer(st, uploader.Options{Prefix: "site", Invalidators: []uploader.Invalidator{good}})
	dirX, _ := site(t, testsite.Spec{})
	dirY, mY := site(t, testsite.Spec{Version: 1})
	if _, err := d.Deploy(ctx, dirX); err != nil {
		t.Fatalf("deploy X: %v", err)
	}

	failing := e.deployer(st, uploader.Options{Prefix: "site", Invalidators: []uploader.Invalidator{bad}})
	res, err := failing.Deploy(ctx, dirY)
	if err == nil {
		t.Fatalf("deploy Y to an unknown distribution: got no error, want one")
	}
	want := uploader.BucketPaths("site", res.Plan.Invalidate) // the origin path is the bucket root
	if len(want) == 0 {
		t.Fatalf("deploy Y planned no invalidation, want its changed pages")
	}
	e.checkPublished("site/", mY)
	if got := len(e.inspect("site/" + uploader.PendingDir)); got != 1 {
		t.Fatalf("after the failed invalidation: got %d pending markers, want 1", got)
	}

	// The rerun with a working CDN: the build is fully published, so this
	// is the no-change path, which must still send the pending paths.
	res, err = d.Deploy(ctx, dirY)
	if err != nil {
		t.Fatalf("rerun: %v", err)
	}
	got := recordedBy(t, moto, dist)
	if len(got) != 2 {
		t.Fatalf("after the rerun: moto recorded %d invalidations %v, want 2 (X's and the pending one)", len(got), got)
	}
	if diff := cmp.Diff(want, got[1].Paths); diff != "" {
		t.Errorf("pending invalidation's paths (-want +got):\n%s", diff)
	}
	if res.Uploaded != 0 || res.Plan.PendingInvalidations != 1 {
		t.Errorf("rerun: got uploaded %d, pending %d, want 0 and 1", res.Uploaded, res.Plan.PendingInvalidations)
	}
	if left := e.inspect("site/" + uploader.PendingDir); len(left) != 0 {
		t.Errorf("pending markers left after the rerun: %v", slices.Collect(maps.Keys(left)))
	}

	// Nothing pending any more: zero writes and no invalidation.
	mark := e.s3.Mark(t)
	if _, err := d.Deploy(ctx, dirY); err != nil {
		t.Fatalf("second rerun: %v", err)
	}
	if w := e.puts(mark); len(w) != 0 {
		t.Errorf("no-change redeploy with nothing pending wrote %v, want nothing", w)
	}
	if got := recordedBy(t, moto, dist); len(got) != 2 {
		t.Errorf("no-change redeploy: moto recorded %d invalidations, want still 2", len(got))
	}
}

// A rollback also completes what an earlier deploy left pending: it
// adopts the pending marker, its one invalidation covers the pending paths
// as well as its own, and the marker is gone afterwards.
func TestPendingInvalidationCompletedByRollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	moto := testsvc.StartMoto(t)
	ctx := context.Background()
	dist := moto.CreateDistribution(t)
	good := newCloudFront(t, moto, moto.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}})
	bad := newCloudFront(t, moto, moto.URL, uploader.CloudFrontOptions{DistributionIDs: []string{"EUNKNOWNDIST0"}})
	st := e.store(e.s3.Endpoint)
	d := e.deployer(st, uploader.Options{Invalidators: []uploader.Invalidator{good}})
	dirX, mX := site(t, testsite.Spec{})
	dirY, _ := site(t, testsite.Spec{Version: 1, Pages: 12})
	if _, err := d.Deploy(ctx, dirX); err != nil {
		t.Fatalf("deploy X: %v", err)
	}
	failed, err := e.deployer(st, uploader.Options{Invalidators: []uploader.Invalidator{bad}}).Deploy(ctx, dirY)
	if err == nil {
		t.Fatalf("deploy Y to an unknown distribution: got no error, want one")
	}
	res, err := d.Rollback(ctx, mX.BuildID)
	if err != nil {
		t.Fatalf("roll back to X: %v", err)
	}
	if res.Plan.PendingInvalidations != 1 {
		t.Errorf("rollback adopted %d pending invalidations, want 1", res.Plan.PendingInvalidations)
	}
	got := recordedBy(t, moto, dist)
	if len(got) != 2 {
		t.Fatalf("moto recorded %d invalidations, want 2 (X's, then the rollback's)", len(got))
	}
	for _, p := range failed.Plan.Invalidate {
		if !slices.Contains(got[1].Paths, p) {
			t.Errorf("rollback's invalidation %v lacks the pending path %s", got[1].Paths, p)
		}
	}
	if left := e.inspect(uploader.PendingDir); len(left) != 0 {
		t.Errorf("pending markers left after the rollback: %v", slices.Collect(maps.Keys(left)))
	}
}
