package uploader_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/uploader"
)

// BenchmarkOnePageChangeLargeSite deploys a one-page change to a large
// site of small files (ASSETCTL_BENCH_FILES, default 100,000: 2% pages,
// the rest 256-byte images) three ways in the same run, each against its
// own bucket of one versitygw server that already holds the site: a plan
// from the deploy records (the default), today's plan from a listing of
// the whole prefix (Options.Verify), and `aws s3 sync` of the same folder.
// Each iteration flips the site between two versions that differ in one
// page. ns/op is the records plan's deploy; x-listing and x-aws-sync are
// the others' times divided by it; requests/op are the records plan's S3
// requests, from the server's log.
//
//	ASSETCTL_BENCH_FILES=100000 go test -run '^$' -bench BenchmarkOnePageChangeLargeSite -benchtime 3x -timeout 2h ./uploader
func BenchmarkOnePageChangeLargeSite(b *testing.B) {
	if _, err := exec.LookPath("aws"); err != nil {
		b.Fatalf("aws CLI not found: pip install awscli (it is the baseline)")
	}
	files := 100_000
	if s := os.Getenv("ASSETCTL_BENCH_FILES"); s != "" {
		fmt.Sscan(s, &files)
	}
	spec := testsite.Spec{Pages: files / 50, Images: files - files/50, ImageSize: 256}
	v1, _ := site(b, spec)
	spec.PageEdits = map[int]string{3: "<p>one page changed</p>"}
	v2, _ := site(b, spec)
	e := newEnv(b)
	ctx := context.Background()
	for _, bkt := range []string{"records", "listing", "awssync"} {
		e.s3.CreateBucket(b, bkt)
	}
	deploy := func(bkt, dir string, verify bool) time.Duration {
		st := e.store(e.s3.Endpoint, func(o *uploader.S3Options) { o.Bucket = bkt })
		d, err := uploader.New(st, uploader.Options{Bucket: bkt, Prefix: "site", Verify: verify, Concurrency: benchConcurrency()})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := d.Deploy(ctx, dir); err != nil {
			b.Fatalf("deploy: %v", err)
		}
		return time.Since(start)
	}
	sync := func(dir string) time.Duration {
		cmd := exec.Command("aws", "--endpoint-url", e.s3.Endpoint, "s3", "sync", "--only-show-errors", dir, "s3://awssync/site")
		cmd.Env = append(os.Environ(), e.s3.Env()...)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("aws s3 sync: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	// The starting state: every bucket holds v1.
	deploy("records", v1, false)
	deploy("listing", v1, false)
	sync(v1)

	var records, listing, aws time.Duration
	var requests int
	dirs := [2]string{v2, v1}
	i := 0
	b.ResetTimer()
	for b.Loop() {
		dir := dirs[i%2]
		i++
		b.StopTimer()
		listing += deploy("listing", dir, true)
		aws += sync(dir)
		mark := e.s3.Mark(b)
		b.StartTimer()
		records += deploy("records", dir, false)
		b.StopTimer()
		requests += len(e.s3.Requests(b, mark)) - 1 // less the log-sync marker
		b.StartTimer()
	}
	b.ReportMetric(listing.Seconds()/records.Seconds(), "x-listing")
	b.ReportMetric(aws.Seconds()/records.Seconds(), "x-aws-sync")
	b.ReportMetric(records.Seconds()/float64(b.N), "s-records")
	b.ReportMetric(listing.Seconds()/float64(b.N), "s-listing")
	b.ReportMetric(aws.Seconds()/float64(b.N), "s-aws-sync")
	b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
}
