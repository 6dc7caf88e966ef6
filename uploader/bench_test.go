package uploader_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/uploader"
)

// benchSite is the benchmark site: 2,000 files, about 140 MB
// (400 pages, 1,597 images averaging 87 KB, a bundle, a stylesheet, robots.txt).
var benchSite = testsite.Spec{Pages: 400, Images: 1597, ImageSize: 87_000}

// BenchmarkDeploy measures, against one versitygw server and in the same
// run, a cold deploy, a no-change redeploy and a one-page-one-image
// redeploy of the benchmark site, each against `aws s3 sync` of the same
// folder to another bucket of the same server. ns/op is the deploy's time;
// x-vs-aws-sync is aws s3 sync's time divided by ours.
//
//	go test -run '^$' -bench BenchmarkDeploy -benchtime 3x ./uploader
func BenchmarkDeploy(b *testing.B) {
	if _, err := exec.LookPath("aws"); err != nil {
		b.Fatalf("aws CLI not found: pip install awscli (it is the baseline)")
	}
	dir, _ := site(b, benchSite)
	changed, _ := site(b, testsite.Spec{Pages: benchSite.Pages, Images: benchSite.Images, ImageSize: benchSite.ImageSize,
		PageEdits: map[int]string{5: "<p>edited</p>"}, ImageEdits: map[int]string{5: "edited"}})
	e := newEnv(b)
	ctx := context.Background()
	run := 0
	fresh := func() (ours, theirs string) {
		run++
		ours, theirs = fmt.Sprintf("ours-%d", run), fmt.Sprintf("aws-%d", run)
		e.s3.CreateBucket(b, ours)
		e.s3.CreateBucket(b, theirs)
		return ours, theirs
	}
	deploy := func(bkt, dir string) time.Duration {
		st := e.store(e.s3.Endpoint, func(o *uploader.S3Options) { o.Bucket = bkt })
		d, err := uploader.New(st, uploader.Options{Bucket: bkt, Prefix: "site", Concurrency: benchConcurrency()})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := d.Deploy(ctx, dir); err != nil {
			b.Fatalf("deploy: %v", err)
		}
		return time.Since(start)
	}
	sync := func(bkt, dir string) time.Duration {
		cmd := exec.Command("aws", "--endpoint-url", e.s3.Endpoint, "s3", "sync", "--only-show-errors", dir, "s3://"+bkt+"/site")
		cmd.Env = append(os.Environ(), e.s3.Env()...)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("aws s3 sync: %v\n%s", err, out)
		}
		return time.Since(start)
	}

	b.Run("cold", func(b *testing.B) {
		var ours, theirs, serverOurs, serverTheirs time.Duration
		for b.Loop() {
			b.StopTimer()
			bo, bt := fresh()
			cpu := e.s3.CPU(b)
			theirs += sync(bt, dir)
			serverTheirs += e.s3.CPU(b) - cpu
			cpu = e.s3.CPU(b)
			b.StartTimer()
			ours += deploy(bo, dir)
			b.StopTimer()
			serverOurs += e.s3.CPU(b) - cpu
			b.StartTimer()
		}
		b.ReportMetric(theirs.Seconds()/ours.Seconds(), "x-vs-aws-sync")
		b.ReportMetric(ours.Seconds()/float64(b.N), "s-ours")
		b.ReportMetric(theirs.Seconds()/float64(b.N), "s-aws-sync")
		// The server's CPU time during each: on a small machine it bounds
		// the wall time of any client.
		b.ReportMetric(serverOurs.Seconds()/float64(b.N), "server-cpu-s-ours")
		b.ReportMetric(serverTheirs.Seconds()/float64(b.N), "server-cpu-s-aws")
	})
	b.Run("no-change", func(b *testing.B) {
		b.StopTimer()
		bo, bt := fresh()
		sync(bt, dir)
		deploy(bo, dir)
		b.StartTimer()
		var ours, theirs time.Duration
		var puts int
		for b.Loop() {
			b.StopTimer()
			theirs += sync(bt, dir)
			mark := e.s3.Mark(b)
			b.StartTimer()
			ours += deploy(bo, dir)
			b.StopTimer()
			puts += len(e.s3.Requests(b, mark, "PUT", "POST"))
			b.StartTimer()
		}
		b.ReportMetric(theirs.Seconds()/ours.Seconds(), "x-vs-aws-sync")
		b.ReportMetric(ours.Seconds()/float64(b.N), "s-ours")
		b.ReportMetric(theirs.Seconds()/float64(b.N), "s-aws-sync")
		b.ReportMetric(float64(puts)/float64(b.N), "PUTs/op")
	})
	b.Run("one-page-one-image", func(b *testing.B) {
		var ours, theirs time.Duration
		var writes []string
		for b.Loop() {
			b.StopTimer()
			bo, bt := fresh()
			sync(bt, dir)
			deploy(bo, dir)
			theirs += sync(bt, changed)
			mark := e.s3.Mark(b)
			b.StartTimer()
			ours += deploy(bo, changed)
			b.StopTimer()
			writes = e.s3.Requests(b, mark, "PUT", "POST")
			b.StartTimer()
		}
		var record int
		for _, w := range writes {
			if strings.Contains(w, uploader.RecordDir) {
				record++
			}
		}
		if len(writes) != 3 || record != 1 {
			b.Errorf("one page and one image changed: wrote %v, want the page, the image and the record", writes)
		}
		b.ReportMetric(theirs.Seconds()/ours.Seconds(), "x-vs-aws-sync")
		b.ReportMetric(float64(len(writes)), "writes/op")
	})
}

// benchConcurrency is ASSETCTL_BENCH_CONCURRENCY, else the default.
func benchConcurrency() int {
	var n int
	fmt.Sscan(os.Getenv("ASSETCTL_BENCH_CONCURRENCY"), &n)
	return n
}

// BenchmarkDeployLargeFile uploads one fingerprinted file of each size in
// 16 MiB parts and reports the bytes the process allocated meanwhile:
// streaming keeps it flat as the file grows.
//
//	go test -run '^$' -bench BenchmarkDeployLargeFile -benchtime 1x ./uploader
func BenchmarkDeployLargeFile(b *testing.B) {
	for _, size := range []int64{64 << 20, 256 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			dir, _ := site(b, testsite.Spec{Pages: 1, Images: 1, Big: size})
			e := newEnv(b)
			var alloc uint64
			n := 0
			for b.Loop() {
				b.StopTimer()
				n++
				bkt := fmt.Sprintf("big-%d", n)
				e.s3.CreateBucket(b, bkt)
				d, err := uploader.New(e.store(e.s3.Endpoint, func(o *uploader.S3Options) { o.Bucket = bkt }), uploader.Options{Bucket: bkt})
				if err != nil {
					b.Fatal(err)
				}
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				b.StartTimer()
				if _, err := d.Deploy(context.Background(), dir); err != nil {
					b.Fatalf("deploy: %v", err)
				}
				b.StopTimer()
				runtime.ReadMemStats(&after)
				alloc += after.TotalAlloc - before.TotalAlloc
				b.StartTimer()
			}
			b.SetBytes(size)
			b.ReportMetric(float64(alloc)/float64(n)/(1<<20), "alloc-MiB/op")
		})
	}
}
