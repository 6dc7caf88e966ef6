package cli

import (
	"context"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chromedp/chromedp"

	"github.com/assetctl/assetctl/internal/testsvc"
)

// TestPrebuiltDeploy: a real `vite build` output, imported with
// `assetctl build --prebuilt` and published with the unchanged `assetctl
// deploy` to an S3 server. boto3 sees Vite's hashed files immutable and
// pages and public files short-lived; a redeploy PUTs nothing; the site,
// served from the bucket the way a CDN origin path would, works in
// Chromium with every chunk resolving, the dynamic import included.
func TestPrebuiltDeploy(t *testing.T) {
	dist := testsvc.ViteMultiPage(t)
	e := newDeployEnv(t)
	out := filepath.Join(t.TempDir(), "out")
	if code, stdout, stderr := run(t, "build", "--prebuilt", dist, "-o", out); code != 0 {
		t.Fatalf("build --prebuilt: exit %d\n%s%s", code, stdout, stderr)
	}
	deploy := func() {
		t.Helper()
		if code, _, stderr := run(t, "deploy", out, "--bucket", "s3://"+testBucket+"/site", "--endpoint", e.s3.Endpoint); code != 0 {
			t.Fatalf("deploy: exit %d: %s", code, stderr)
		}
	}
	deploy()
	_, keys, raw := e.published(t, "site/")
	for _, want := range []string{"index.html", "about/index.html", "favicon.svg"} {
		if !keys[want] {
			t.Errorf("%s: not deployed", want)
		}
	}
	var hashed int
	for key, o := range raw {
		rel := strings.TrimPrefix(key, "site/")
		if strings.HasPrefix(rel, ".assetctl/") {
			continue
		}
		cc, _ := o["cacheControl"].(string)
		immutable := strings.Contains(cc, "immutable")
		if want := strings.HasPrefix(rel, "assets/"); immutable != want {
			t.Errorf("%s: got Cache-Control %q, want immutable %v", rel, cc, want)
		}
		if strings.HasPrefix(rel, "assets/") {
			hashed++
		}
		if ct, _ := o["contentType"].(string); ct == "" {
			t.Errorf("%s: no Content-Type", rel)
		}
	}
	if hashed != 5 {
		t.Errorf("got %d files under assets/, want 5 (2 entries, 2 chunks, 1 stylesheet)", hashed)
	}

	mark := e.s3.Mark(t)
	deploy()
	if puts := e.s3.Requests(t, mark, "PUT"); len(puts) != 0 {
		t.Errorf("redeploy of the same output: got PUTs %v, want none", puts)
	}

	// Read the bucket anonymously through a proxy that maps / to the
	// deploy prefix, as a CDN's origin path does.
	ctx := context.Background()
	raw3 := s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(e.s3.AccessKey, e.s3.SecretKey, "")},
		func(o *s3.Options) { o.BaseEndpoint = aws.String(e.s3.Endpoint); o.UsePathStyle = true })
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::` + testBucket + `/*"}]}`
	if _, err := raw3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(testBucket), Policy: aws.String(policy)}); err != nil {
		t.Fatalf("allow anonymous reads: %v", err)
	}
	origin, _ := url.Parse(e.s3.Endpoint)
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(origin)
		p := r.In.URL.Path
		if strings.HasSuffix(p, "/") {
			p += "index.html"
		}
		r.Out.URL.Path = "/" + testBucket + "/site" + p
		r.Out.URL.RawPath = ""
	}}
	cdn := httptest.NewServer(proxy)
	defer cdn.Close()

	browser := testsvc.Chromium(t)
	eval := func(expr string) {
		t.Helper()
		testsvc.WaitJS(t, browser, expr)
	}
	if err := chromedp.Do(browser, chromedp.Navigate(cdn.URL+"/")); err != nil {
		t.Fatal(err)
	}
	eval(`document.getElementById("load") !== null`)
	if _, err := chromedp.Run(browser, chromedp.Evaluate[any](`document.getElementById("load").click()`)); err != nil {
		t.Fatal(err)
	}
	eval(`document.getElementById("out").textContent === "shared lazy loaded"`)
	eval(`getComputedStyle(document.body).color === "rgb(1, 2, 3)"`)
	if err := chromedp.Do(browser, chromedp.Navigate(cdn.URL+"/about/")); err != nil {
		t.Fatal(err)
	}
	eval(`document.getElementById("out").textContent === "shared about"`)
}
