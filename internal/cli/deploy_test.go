package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/manifest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const testBucket = "site-bucket"

// deployEnv is an S3 server with a bucket, and the AWS environment the
// CLI's default credential chain reads.
type deployEnv struct {
	s3 *testsvc.S3
}

func newDeployEnv(t *testing.T) *deployEnv {
	t.Helper()
	s := testsvc.StartS3(t)
	s.CreateBucket(t, testBucket)
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		if k != "AWS_ENDPOINT_URL" { // the CLI must get the endpoint from --endpoint
			t.Setenv(k, v)
		}
	}
	t.Setenv("GITHUB_STEP_SUMMARY", "")
	return &deployEnv{s3: s}
}

func writeSite(t *testing.T, spec testsite.Spec) (string, *manifest.Manifest) {
	t.Helper()
	dir := t.TempDir()
	m, err := testsite.Write(dir, spec)
	if err != nil {
		t.Fatalf("write test site: %v", err)
	}
	return dir, m
}

// published reads bucket/prefix with boto3 (an independent client): key
// → bytes of its pages, and the set of keys.
func (e *deployEnv) published(t *testing.T, prefix string) (pages map[string][]byte, keys map[string]bool, raw map[string]map[string]any) {
	t.Helper()
	cmd := exec.Command("python3", "../../uploader/testdata/boto3_view.py", testBucket, prefix)
	cmd.Env = append(os.Environ(), e.s3.Env()...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("read the bucket with boto3: %v", err)
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("decode boto3 output: %v", err)
	}
	pages, keys = map[string][]byte{}, map[string]bool{}
	for k, o := range raw {
		rel := strings.TrimPrefix(k, prefix)
		keys[rel] = true
		if strings.HasSuffix(k, ".html") {
			pages[rel] = []byte(o["body"].(string))
		}
	}
	return pages, keys, raw
}

func TestDeployBadInput(t *testing.T) {
	e := newDeployEnv(t)
	good, _ := writeSite(t, testsite.Spec{Pages: 2, Images: 2})
	malformed := t.TempDir()
	if err := os.WriteFile(filepath.Join(malformed, "manifest.json"), []byte("{\"version\": 1, \"buildID\": \"x\", \"files\": {}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	badRules := filepath.Join(t.TempDir(), "assetctl.yaml")
	if err := os.WriteFile(badRules, []byte("deploy:\n  rules:\n    - match: 'img/[a-'\n      cache-control: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ep := e.s3.Endpoint
	deadEndpoint := "http://" + testsvc.Addr(testsvc.FreePort(t)) // nothing listens there
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no OUT_DIR", []string{"deploy", "--bucket", "s3://" + testBucket, "--endpoint", ep}, nil, "missing OUT_DIR"},
		{"not a build", []string{"deploy", t.TempDir(), "--bucket", "s3://" + testBucket, "--endpoint", ep}, nil, "not an assetctl build output"},
		{"malformed manifest", []string{"deploy", malformed, "--bucket", "s3://" + testBucket, "--endpoint", ep}, nil, "no files"},
		{"no bucket flag", []string{"deploy", good, "--endpoint", ep}, nil, "--bucket is required"},
		{"bucket not s3 URL", []string{"deploy", good, "--bucket", testBucket, "--endpoint", ep}, nil, "want s3://BUCKET[/PREFIX]"},
		{"missing bucket", []string{"deploy", good, "--bucket", "s3://no-such-bucket/site", "--endpoint", ep}, nil, `bucket "no-such-bucket" does not exist`},
		{"access denied", []string{"deploy", good, "--bucket", "s3://" + testBucket, "--endpoint", ep}, map[string]string{"AWS_SECRET_ACCESS_KEY": "wrong"}, "denied"},
		{"no credentials", []string{"deploy", good, "--bucket", "s3://" + testBucket, "--endpoint", ep},
			map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_EC2_METADATA_DISABLED": "true"}, "find AWS credentials"},
		{"bad endpoint", []string{"deploy", good, "--bucket", "s3://" + testBucket, "--endpoint", deadEndpoint}, nil, "check --endpoint"},
		{"endpoint not a URL", []string{"deploy", good, "--bucket", "s3://" + testBucket, "--endpoint", "localhost:9000"}, nil, "--endpoint \"localhost:9000\": want an http:// or https:// URL"},
		{"bad glob", []string{"deploy", good, "--bucket", "s3://" + testBucket, "--endpoint", ep, "--config", badRules}, nil, `deploy.rules[0]: match "img/[a-" is not a valid glob`},
		{"bad purge URL", []string{"deploy", good, "--bucket", "s3://" + testBucket, "--endpoint", ep, "--purge", "varnish"}, nil, "--purge \"varnish\""},
		{"bad distribution", []string{"deploy", good, "--bucket", "s3://" + testBucket, "--endpoint", ep, "--cloudfront-distribution", "e1/x"}, nil, "--cloudfront-distribution \"e1/x\""},
		{"bad keep", []string{"deploy", good, "--bucket", "s3://" + testBucket, "--endpoint", ep, "--keep", "0"}, nil, "--keep 0"},
		{"rollback with nothing deployed", []string{"deploy", "--rollback", "--bucket", "s3://" + testBucket, "--endpoint", ep}, nil, "no deploy records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, _, stderr := run(t, tt.args...)
			if code == 0 {
				t.Fatalf("got exit 0, want non-zero")
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("got stderr %q, want it to contain %q", stderr, tt.want)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 0 {
				t.Errorf("got %d lines on stderr, want one clear message:\n%s", n+1, stderr)
			}
		})
	}
	if _, keys, _ := e.published(t, ""); len(keys) != 0 {
		t.Errorf("bad input published %d objects, want none", len(keys))
	}
}

// Points 5, 8, 9 end to end: CloudFront through moto and a real Varnish
// edge purged over HTTP, JSON output and the GitHub step summary.
func TestDeployCDN(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	raw := s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(e.s3.AccessKey, e.s3.SecretKey, "")},
		func(o *s3.Options) { o.BaseEndpoint = aws.String(e.s3.Endpoint); o.UsePathStyle = true })
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::` + testBucket + `/*"}]}`
	if _, err := raw.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(testBucket), Policy: aws.String(policy)}); err != nil {
		t.Fatalf("allow anonymous reads for the edge: %v", err)
	}
	moto := testsvc.StartMoto(t)
	dist := moto.CreateDistributionFor(t, testBucket, "/site")
	edge := testsvc.StartVarnish(t, testsvc.VarnishOptions{Backend: strings.TrimPrefix(e.s3.Endpoint, "http://")})
	summary := filepath.Join(t.TempDir(), "summary.md")
	t.Setenv("GITHUB_STEP_SUMMARY", summary)

	deploy := func(dir string) map[string]any {
		t.Helper()
		code, stdout, stderr := run(t, "deploy", dir, "--bucket", "s3://"+testBucket+"/site", "--endpoint", e.s3.Endpoint,
			"--cloudfront-distribution", dist, "--cloudfront-endpoint", moto.URL, "--purge", edge.URL+"/"+testBucket, "--wait", "--json")
		if code != 0 {
			t.Fatalf("deploy exit %d: %s", code, stderr)
		}
		var res map[string]any
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("--json output is not JSON: %v\n%s", err, stdout)
		}
		return res
	}
	get := func(path string) (string, string) {
		t.Helper()
		resp, err := http.Get(edge.URL + "/" + testBucket + "/site/" + path)
		if err != nil {
			t.Fatalf("GET %s through the edge: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s through the edge: got %s, want 200", path, resp.Status)
		}
		return string(b), resp.Header.Get("X-Cache")
	}

	dir0, m0 := writeSite(t, testsite.Spec{})
	deploy(dir0)
	invs := moto.Invalidations(t, dist)
	if len(invs) != 1 || !slices.Contains(invs[0].Paths, "/docs/") || !slices.Contains(invs[0].Paths, "/") {
		t.Fatalf("cold deploy: got invalidations %+v, want one naming every page", invs)
	}
	oldImage := m0.Files["img/i0001.png"].Path
	get("docs/index.html")
	get(oldImage)
	if _, cache := get(oldImage); cache != "HIT" {
		t.Fatalf("edge does not cache the asset (X-Cache %s)", cache)
	}

	dir1, m1 := writeSite(t, testsite.Spec{PageEdits: map[int]string{1: "<p>second edition</p>"}, ImageEdits: map[int]string{1: "new"}})
	res := deploy(dir1)
	invs = moto.Invalidations(t, dist)
	if len(invs) != 2 {
		t.Fatalf("got %d invalidations, want 2", len(invs))
	}
	if got, want := invs[1].Paths, []string{"/docs", "/docs/", "/docs/index.html"}; !slices.Equal(sorted(got), want) {
		t.Errorf("invalidated %v, want exactly %v", got, want)
	}
	if !strings.Contains(invs[1].CallerReference, m1.BuildID) {
		t.Errorf("caller reference %q does not derive from build ID %s", invs[1].CallerReference, m1.BuildID)
	}
	if ids, _ := res["invalidations"].([]any); len(ids) != 2 || !strings.HasPrefix(ids[0].(string), dist+"/") {
		t.Errorf("JSON result invalidations %v, want the CloudFront ID then the purge's", res["invalidations"])
	}
	if body, _ := get("docs/index.html"); !strings.Contains(body, "second edition") {
		t.Errorf("edge serves the old page after the redeploy: %q", body)
	}
	if _, cache := get(oldImage); cache != "HIT" {
		t.Errorf("old asset %s: got X-Cache %s, want HIT (assets are never purged)", oldImage, cache)
	}
	get(m1.Files["img/i0001.png"].Path)

	deploy(dir1)
	if n := len(moto.Invalidations(t, dist)); n != 2 {
		t.Errorf("no-change redeploy: got %d invalidations, want still 2", n)
	}
	md, err := os.ReadFile(summary)
	if err != nil || strings.Count(string(md), "### assetctl deploy") != 3 || !strings.Contains(string(md), "| uploaded | 2 files") {
		t.Errorf("GITHUB_STEP_SUMMARY: got %q (%v), want three summaries, the second uploading 2 files", md, err)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestDeployHelperProcess is not a test: TestDeployKilled runs the test
// binary as the assetctl command through it.
func TestDeployHelperProcess(t *testing.T) {
	args := os.Getenv("ASSETCTL_TEST_DEPLOY_ARGS")
	if args == "" {
		return
	}
	// Like cmd/assetctl: Ctrl-C (SIGINT) cancels the context.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := Run(ctx, strings.Split(args, "\x1f"), os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Points 4 and 10: interrupt the deploy at random moments, alternately
// with Ctrl-C (SIGINT: the command stops between steps and says so) and
// kill -9; after every interruption no published page references a
// missing asset, and a rerun completes.
func TestDeployKilled(t *testing.T) {
	e := newDeployEnv(t)
	proxy := testsvc.StartFaultProxy(t, e.s3.Endpoint, testsvc.FaultOptions{Slow: 0.5, Delay: 60 * time.Millisecond})
	// Every run deploys a new build whose images all changed, so each one
	// has a full asset step to interrupt, starting from whatever state the
	// previous interruption left.
	version := func(v int) (string, *manifest.Manifest) {
		edits := map[int]string{}
		for i := range 60 {
			edits[i] = fmt.Sprintf("v%d", v)
		}
		return writeSite(t, testsite.Spec{Pages: 30, Images: 60, Version: v, ImageEdits: edits})
	}
	dir0, _ := version(0)
	args := func(dir string) []string {
		return []string{"deploy", dir, "--bucket", "s3://" + testBucket + "/site", "--endpoint", proxy.URL, "--concurrency", "4"}
	}
	if code, _, stderr := run(t, args(dir0)...); code != 0 {
		t.Fatalf("deploy v0: %s", stderr)
	}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	interrupted := 0
	var dir1 string
	var m1 *manifest.Manifest
	for i := range 8 {
		dir1, m1 = version(i + 1)
		cmd := exec.Command(os.Args[0], "-test.run=^TestDeployHelperProcess$")
		cmd.Env = append(os.Environ(), "ASSETCTL_TEST_DEPLOY_ARGS="+strings.Join(args(dir1), "\x1f"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		delay := time.Duration(100+rnd.IntN(1200)) * time.Millisecond
		sig := syscall.SIGKILL
		if i%2 == 0 {
			sig = syscall.SIGINT
		}
		select {
		case <-done:
			t.Logf("run %d: deploy finished before %v", i, delay)
		case <-time.After(delay):
			_ = cmd.Process.Signal(sig)
			err := <-done
			interrupted++
			// A SIGINT that lands before the child installed its handler
			// kills it outright, before any deploy began; otherwise the
			// command must stop cleanly and say how to finish.
			killedOutright := cmd.ProcessState != nil && cmd.ProcessState.Sys().(syscall.WaitStatus).Signaled()
			if sig == syscall.SIGINT && err != nil && !killedOutright && !strings.Contains(stderr.String(), "run the same command again") {
				t.Errorf("run %d: Ctrl-C exit %v with stderr %q, want the advice to rerun", i, err, stderr.String())
			}
		}
		pages, keys, _ := e.published(t, "site/")
		if broken := testsite.BrokenPages(pages, keys); len(broken) > 0 {
			t.Fatalf("after kill %d at %v: pages reference missing assets: %v", i, delay, broken)
		}
	}
	if interrupted == 0 {
		t.Fatalf("no kill interrupted a deploy: the test proved nothing")
	}
	if code, _, stderr := run(t, args(dir1)...); code != 0 {
		t.Fatalf("rerun after kills: %s", stderr)
	}
	pages, keys, _ := e.published(t, "site/")
	for _, o := range m1.Outputs() {
		if !keys[o.Path] {
			t.Errorf("after the rerun %s is missing", o.Path)
		}
	}
	if body, want := string(pages["index.html"]), "v8</title>"; !strings.Contains(body, want) {
		t.Errorf("after the rerun index.html is %q, want version 8", body)
	}
	if broken := testsite.BrokenPages(pages, keys); len(broken) > 0 {
		t.Errorf("after the rerun: %v", broken)
	}
}

// Points 7, 8 and 9 through the command: --dry-run prints the plan with
// headers and writes nothing, CI gets plain progress lines and a summary,
// and --rollback [BUILD_ID] republishes an earlier build's pages.
func TestDeployDryRunRollback(t *testing.T) {
	e := newDeployEnv(t)
	dir0, m0 := writeSite(t, testsite.Spec{})
	dir1, m1 := writeSite(t, testsite.Spec{Version: 1})
	base := []string{"--bucket", "s3://" + testBucket + "/site", "--endpoint", e.s3.Endpoint}
	deploy := func(args ...string) (string, string) {
		t.Helper()
		code, stdout, stderr := run(t, append(append([]string{"deploy"}, args...), base...)...)
		if code != 0 {
			t.Fatalf("deploy %v: exit %d: %s", args, code, stderr)
		}
		return stdout, stderr
	}

	plan, _ := deploy(dir0, "--dry-run")
	for _, want := range []string{"1. assets: 22", "Cache-Control: public, max-age=31536000, immutable",
		"Content-Type: text/html; charset=utf-8", "2. deploy record: site/.assetctl/deploys/", "5. invalidate: 14 paths", "  /docs/\n",
		"dry run: nothing was changed"} {
		if !strings.Contains(plan, want) {
			t.Errorf("dry-run plan lacks %q:\n%s", want, plan)
		}
	}
	if _, keys, _ := e.published(t, ""); len(keys) != 0 {
		t.Fatalf("dry run published %d objects", len(keys))
	}

	summary, progress := deploy(dir0)
	if !strings.Contains(progress, "assets: 22 files") || !strings.Contains(progress, "pages: 11 files") {
		t.Errorf("progress on a non-terminal: got %q, want one line per step", progress)
	}
	if !strings.Contains(summary, "deployed build "+m0.BuildID) || !strings.Contains(summary, "uploaded 33 files") {
		t.Errorf("summary: got %q, want the build and 33 uploads", summary)
	}
	deploy(dir1)
	if out, _ := deploy(dir1); !strings.Contains(out, "nothing to do") {
		t.Errorf("no-change redeploy summary: got %q, want nothing to do", out)
	}

	out, _ := deploy("--rollback")
	if !strings.Contains(out, "rollback to build "+m0.BuildID) {
		t.Errorf("--rollback: got %q, want a rollback to %s", out, m0.BuildID)
	}
	pages, _, _ := e.published(t, "site/")
	if !strings.Contains(string(pages["index.html"]), "v0") {
		t.Errorf("after --rollback index.html is %q, want version 0", pages["index.html"])
	}
	deploy("--rollback", m1.BuildID)
	pages, keys, _ := e.published(t, "site/")
	if !strings.Contains(string(pages["index.html"]), "v1") {
		t.Errorf("after --rollback %s index.html is %q, want version 1", m1.BuildID, pages["index.html"])
	}
	if broken := testsite.BrokenPages(pages, keys); len(broken) > 0 {
		t.Errorf("after rollbacks: %v", broken)
	}
}
