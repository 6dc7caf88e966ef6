package cli

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/manifest"
)

// copyTree copies the example site into a new directory a test may edit.
func copyTree(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// loadResult is what a load saw.
type loadResult struct {
	requests, failed, mixed atomic.Int64
	mu                      sync.Mutex
	examples                []string
	firstSeen               map[string]time.Time // build ID → first response carrying it
}

func (r *loadResult) fail(s string) {
	r.failed.Add(1)
	r.mu.Lock()
	if len(r.examples) < 5 {
		r.examples = append(r.examples, s)
	}
	r.mu.Unlock()
}

// Deploy a new build while a load runs against the origin: no request
// fails, no response mixes asset URLs of two builds (and each names its
// build in X-Build-ID), the new build is served within the poll interval,
// and a malformed deploy record keeps the last good build serving.
func TestServeDeployUnderLoad(t *testing.T) {
	const cdn = "https://cdn.example.test/site/"
	const poll = time.Second
	data := newServeData(t)
	s3srv := edgeSite(t)
	deploy := func(dist string) {
		t.Helper()
		if code, _, stderr := run(t, "deploy", dist, "--bucket", "s3://"+testBucket+"/site", "--endpoint", s3srv.Endpoint); code != 0 {
			t.Fatalf("assetctl deploy: %s", stderr)
		}
	}
	dist1 := buildExample(t)
	site2 := copyTree(t, exampleSite)
	for name, extra := range map[string]string{"js/app.ts": "\nexport const release = 2;\n", "css/site.css": "\nmain { outline: 0; }\n"} {
		f, err := os.OpenFile(filepath.Join(site2, name), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString(extra)
		f.Close()
	}
	dist2 := filepath.Join(t.TempDir(), "dist")
	if code, _, stderr := run(t, "build", site2, "-o", dist2); code != 0 {
		t.Fatalf("build v2: %s", stderr)
	}
	paths := map[string]map[string]bool{} // build ID → the output paths of the build
	var ids []string
	for _, d := range []string{dist1, dist2} {
		m, err := manifest.Load(d)
		if err != nil {
			t.Fatal(err)
		}
		set := map[string]bool{}
		for _, f := range m.Files {
			set[f.Path] = true
		}
		paths[m.BuildID] = set
		ids = append(ids, m.BuildID)
	}
	if ids[0] == ids[1] {
		t.Fatalf("the two builds have the same ID %s", ids[0])
	}
	deploy(dist1)

	_, prefix := testsvc.Redis(t)
	s := startServe(t, exampleSite, append(data.args(), "--manifest", "s3://"+testBucket+"/site", "--endpoint", s3srv.Endpoint,
		"--cdn-url", cdn, "--poll-interval", poll.String(), "--redis", testsvc.SharedRedisAddr, "--cache-prefix", prefix)...)
	putDoc(t, s.URL, "products", "p1", `{"name":"Oak Lamp","price":"€12.00"}`)

	urlRE := regexp.MustCompile(regexp.QuoteMeta(cdn) + `([^"'\s>?#]+)`)
	res := &loadResult{firstSeen: map[string]time.Time{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1_000_000; i++ { // bounded; stop ends it first
				select {
				case <-stop:
					return
				default:
				}
				res.requests.Add(1)
				resp, err := client.Get(s.URL + "/products/p1")
				if err != nil {
					res.fail(err.Error())
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					res.fail(resp.Status)
					continue
				}
				id := resp.Header.Get("X-Build-ID")
				set, ok := paths[id]
				if !ok {
					res.fail("X-Build-ID " + id)
					continue
				}
				for _, m := range urlRE.FindAllSubmatch(body, -1) {
					if !set[string(m[1])] {
						res.mixed.Add(1)
						res.fail("build " + id + " page links " + string(m[0]))
						break
					}
				}
				if !bytes.Contains(body, []byte(cdn)) {
					res.fail("no CDN URL in the page")
				}
				res.mu.Lock()
				if _, seen := res.firstSeen[id]; !seen {
					res.firstSeen[id] = time.Now()
				}
				res.mu.Unlock()
			}
		}()
	}
	seen := func(id string) (time.Time, bool) {
		res.mu.Lock()
		defer res.mu.Unlock()
		at, ok := res.firstSeen[id]
		return at, ok
	}
	waitSeen := func(id string, within time.Duration) time.Time {
		t.Helper()
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			if at, ok := seen(id); ok {
				return at
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("build %s not served within %v", id, within)
		return time.Time{}
	}
	waitSeen(ids[0], 10*time.Second)
	time.Sleep(500 * time.Millisecond)

	deploy(dist2)
	deployed := time.Now()
	// One poll interval, plus the poll's own S3 round trips and a request
	// in flight on a loaded machine.
	at := waitSeen(ids[1], 2*poll+time.Second)
	t.Logf("new build served %v after the deploy returned (poll interval %v)", at.Sub(deployed).Round(time.Millisecond), poll)

	// A malformed deploy record, newer than every real one.
	c := s3.New(s3.Options{Region: s3srv.Region, BaseEndpoint: aws.String(s3srv.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s3srv.AccessKey, s3srv.SecretKey, "")})
	key := manifest.RecordKey("site/", time.Now().Add(time.Minute), "ffffffffffffffff")
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), Body: bytes.NewReader([]byte("not gzip"))}); err != nil {
		t.Fatal(err)
	}
	before := res.requests.Load()
	time.Sleep(3 * poll)
	close(stop)
	wg.Wait()
	if res.requests.Load()-before < 10 {
		t.Errorf("only %d requests after the malformed record, want a load", res.requests.Load()-before)
	}
	code, h, _ := get(t, s.URL+"/products/p1")
	if code != 200 || h.Get("X-Build-ID") != ids[1] {
		t.Errorf("after a malformed record: got %d build %q, want 200 and the last good build %s", code, h.Get("X-Build-ID"), ids[1])
	}
	if !strings.Contains(s.stderr.String(), "kept the previous manifest") {
		t.Errorf("the origin did not log keeping the last good manifest:\n%s", s.stderr)
	}
	if res.failed.Load() != 0 || res.mixed.Load() != 0 {
		t.Errorf("of %d requests: %d failed, %d mixed two builds (e.g. %v); want 0 and 0", res.requests.Load(), res.failed.Load(), res.mixed.Load(), res.examples)
	}
	t.Logf("%d requests during two deploys and a malformed record: %d failed, %d mixed", res.requests.Load(), res.failed.Load(), res.mixed.Load())
}
