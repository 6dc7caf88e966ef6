package uploader_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/uploader"
)

func TestCombineCloudFrontAndVarnish(t *testing.T) {
	ctx := context.Background()
	m := testsvc.StartMoto(t)
	o := newOrigin(t)
	edge := testsvc.StartVarnish(t, testsvc.VarnishOptions{Backend: o.addr()})
	dist := m.CreateDistribution(t)

	o.set("/index.html", "v1", "public, max-age=60")
	fetch(t, edge.URL, "/index.html")
	o.set("/index.html", "v2", "public, max-age=60")

	cf := newCloudFront(t, m, m.URL, uploader.CloudFrontOptions{DistributionIDs: []string{dist}})
	pg, err := uploader.NewPurge(edge.URL, uploader.PurgeOptions{})
	if err != nil {
		t.Fatalf("NewPurge: %v", err)
	}
	inv := uploader.Combine(cf, nil, uploader.Combine(pg))
	id, err := inv.Invalidate(ctx, []string{"/index.html"}, "build-1")
	if err != nil {
		t.Fatalf("Invalidate: %v", err)
	}
	if parts := strings.Split(id, " "); len(parts) != 2 || !strings.HasPrefix(parts[0], dist+"/") || parts[1] != "purge:1" {
		t.Errorf("got ID %q, want %q", id, dist+"/ID purge:1")
	}
	if err := inv.Wait(ctx, id); err != nil {
		t.Errorf("Wait(%q): %v", id, err)
	}
	if body, _ := fetch(t, edge.URL, "/index.html"); body != "v2" {
		t.Errorf("edge serves %q after the combined invalidation, want v2", body)
	}
	want := []recorded{{Ref: "build-1", Paths: []string{"/index.html"}}}
	if diff := cmp.Diff(want, recordedBy(t, m, dist)); diff != "" {
		t.Errorf("moto recorded (-want +got):\n%s", diff)
	}

	// One failing backend does not stop the other, and the error says which.
	bad := uploader.Combine(newCloudFront(t, m, m.URL, uploader.CloudFrontOptions{DistributionIDs: []string{"ENOSUCHDIST"}}), pg)
	o.set("/index.html", "v3", "public, max-age=60")
	if _, err := bad.Invalidate(ctx, []string{"/index.html"}, "build-2"); err == nil || !strings.Contains(err.Error(), "ENOSUCHDIST") {
		t.Errorf("got error %v, want one naming ENOSUCHDIST", err)
	}
	if body, _ := fetch(t, edge.URL, "/index.html"); body != "v3" {
		t.Errorf("edge serves %q, want v3: the purge must run although CloudFront failed", body)
	}
	if err := inv.Wait(ctx, "only-one-id"); err == nil {
		t.Errorf("Wait with one ID for two invalidators: got no error, want one")
	}
}
