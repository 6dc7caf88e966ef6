package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/internal/ghactions"
	"github.com/assetctl/assetctl/internal/testsite"
	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/assetctl/assetctl/uploader"
	"github.com/google/go-cmp/cmp"
)

// ghRun is a simulated GitHub Actions step environment.
type ghRun struct {
	output, summary, temp string
}

func newGHRun(t *testing.T, event string) *ghRun {
	t.Helper()
	dir := t.TempDir()
	g := &ghRun{output: filepath.Join(dir, "output"), summary: filepath.Join(dir, "summary.md"), temp: filepath.Join(dir, "runner-temp")}
	if err := os.Mkdir(g.temp, 0o755); err != nil {
		t.Fatal(err)
	}
	ev := filepath.Join(dir, "event.json")
	if err := os.WriteFile(ev, []byte(event), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GITHUB_OUTPUT", g.output)
	t.Setenv("GITHUB_STEP_SUMMARY", g.summary)
	t.Setenv("GITHUB_EVENT_PATH", ev)
	t.Setenv("RUNNER_TEMP", g.temp)
	return g
}

// step runs assetctl as one step: fresh output and summary files, the
// outputs parsed back as the runner would.
func (g *ghRun) step(t *testing.T, args ...string) (code int, outputs map[string]string, stdout, stderr string) {
	t.Helper()
	for _, f := range []string{g.output, g.summary} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr = run(t, args...)
	data, err := os.ReadFile(g.output)
	if err != nil {
		t.Fatal(err)
	}
	if outputs, err = ghactions.ParseOutputs(string(data)); err != nil {
		t.Fatalf("GITHUB_OUTPUT does not parse: %v\n%s", err, data)
	}
	return code, outputs, stdout, stderr
}

func prEvent(number int, action string, fork bool) string {
	head := "o/site"
	if fork {
		head = "someone/site"
	}
	return `{"action":"` + action + `","number":` + strconv.Itoa(number) + `,"pull_request":{"number":` + strconv.Itoa(number) +
		`,"head":{"repo":{"full_name":"` + head + `"}},"base":{"repo":{"full_name":"o/site"}}}}`
}

// A PR preview deploys next to production under pr-N/, reports its URL
// and counts as step outputs, and --cleanup removes exactly its objects
// (records included): production and pr-70/ (whose name starts the same)
// are untouched, as boto3 sees the bucket. Cleaning up the production
// prefix is refused without --force.
func TestPreviewDeployAndCleanup(t *testing.T) {
	e := newDeployEnv(t)
	g := newGHRun(t, prEvent(7, "synchronize", false))
	base := []string{"--bucket", "s3://" + testBucket + "/www", "--endpoint", e.s3.Endpoint, "--base-url", "https://cdn.example.com"}
	prod, _ := writeSite(t, testsite.Spec{Pages: 4, Images: 2})
	pr, mPR := writeSite(t, testsite.Spec{Pages: 4, Images: 2, PageEdits: map[int]string{1: "<p>preview</p>"}})

	if code, out, _, stderr := g.step(t, append([]string{"deploy", prod}, base...)...); code != 0 || out["url"] != "https://cdn.example.com/www/" {
		t.Fatalf("production deploy: exit %d, url %q: %s", code, out["url"], stderr)
	}
	code, out, _, stderr := g.step(t, append([]string{"deploy", pr, "--preview"}, base...)...)
	if code != 0 {
		t.Fatalf("preview deploy: exit %d: %s", code, stderr)
	}
	want := map[string]string{
		"build-id": mPR.BuildID, "url": "https://cdn.example.com/pr-7/", "uploaded": strconv.Itoa(len(mPR.Files)),
		"unchanged": "0", "deleted": "0", "invalidation-ids": "", "invalidated-paths": "",
		"manifest-file": filepath.Join(pr, "manifest.json"), "assetctl-version": versionString(),
	}
	planFile, commentFile := out["plan-file"], out["comment-file"]
	delete(out, "plan-file")
	delete(out, "comment-file")
	if md, err := os.ReadFile(commentFile); err != nil || !strings.Contains(string(md), "https://cdn.example.com/pr-7/") {
		t.Errorf("comment file %q: got %q (%v), want the summary with the preview's URL", commentFile, md, err)
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("preview outputs (-want +got):\n%s", diff)
	}
	var plan struct {
		Plan struct{ Prefix, BuildID string }
	}
	if data, err := os.ReadFile(planFile); err != nil || json.Unmarshal(data, &plan) != nil || plan.Plan.Prefix != "pr-7/" || !strings.HasPrefix(planFile, g.temp) {
		t.Errorf("plan file %q: got %+v (%v), want the preview's plan in RUNNER_TEMP", planFile, plan, err)
	}
	if md, _ := os.ReadFile(g.summary); !strings.Contains(string(md), "https://cdn.example.com/pr-7/") || !strings.Contains(string(md), "`s3://"+testBucket+"/pr-7/`") {
		t.Errorf("step summary does not name the preview and its URL:\n%s", md)
	}
	if code, _, _, stderr := g.step(t, append([]string{"deploy", pr, "--preview=pr-70"}, base...)...); code != 0 {
		t.Fatalf("second preview: exit %d: %s", code, stderr)
	}

	pages, before, _ := e.published(t, "")
	if !strings.Contains(string(pages["pr-7/docs/index.html"]), "preview") || strings.Contains(string(pages["www/docs/index.html"]), "preview") {
		t.Fatalf("preview and production pages are not side by side as deployed")
	}
	underPR7 := 0
	for k := range before {
		if strings.HasPrefix(k, "pr-7/") {
			underPR7++
		}
	}
	if underPR7 <= len(mPR.Files) {
		t.Fatalf("pr-7/ holds %d objects, want the %d outputs plus its deploy record", underPR7, len(mPR.Files))
	}

	// The production prefix (or one holding it) is refused without --force.
	for _, p := range []string{"www", "/www/"} {
		code, _, _, stderr := g.step(t, append([]string{"deploy", "--cleanup", p}, base...)...)
		if code == 0 || !strings.Contains(stderr, "production") || !strings.Contains(stderr, "--force") {
			t.Errorf("--cleanup %s: got exit %d, stderr %q; want a refusal naming production and --force", p, code, stderr)
		}
	}
	// A prefix inside production where the live site has pages.
	if code, _, _, stderr := g.step(t, append([]string{"deploy", "--cleanup", "www/docs"}, base...)...); code == 0 || !strings.Contains(stderr, "live site") {
		t.Errorf("--cleanup www/docs: got exit %d, stderr %q; want a refusal naming the live page", code, stderr)
	}
	rootBase := []string{"--bucket", "s3://" + testBucket, "--endpoint", e.s3.Endpoint}
	if code, _, _, stderr := g.step(t, append([]string{"deploy", "--cleanup", "pr-7", "--preview"}, rootBase...)...); code == 0 {
		t.Errorf("--cleanup with --preview: got exit 0 (%s), want a usage error", stderr)
	}
	if code, _, _, stderr := g.step(t, append([]string{"deploy", pr, "--preview=www"}, base...)...); code == 0 || !strings.Contains(stderr, "production") {
		t.Errorf("--preview www: got exit %d, stderr %q; want a refusal", code, stderr)
	}
	if _, after, _ := e.published(t, ""); !maps.Equal(before, after) {
		t.Fatalf("refused commands changed the bucket")
	}

	// --cleanup without a value: the pull request's pr-7.
	code, out, stdout, stderr := g.step(t, append([]string{"deploy", "--cleanup"}, base...)...)
	if code != 0 {
		t.Fatalf("cleanup: exit %d: %s", code, stderr)
	}
	if out["deleted"] != strconv.Itoa(underPR7) {
		t.Errorf("cleanup: deleted output %q, want %d (stdout %q)", out["deleted"], underPR7, stdout)
	}
	_, after, _ := e.published(t, "")
	for k := range before {
		if strings.HasPrefix(k, "pr-7/") {
			if after[k] {
				t.Errorf("%s is still there after the cleanup", k)
			}
			continue
		}
		if !after[k] {
			t.Errorf("%s, outside pr-7/, was removed by the cleanup", k)
		}
	}
	if len(after) != len(before)-underPR7 {
		t.Errorf("after cleanup: %d objects, want %d", len(after), len(before)-underPR7)
	}
}

// A fork's pull request gets no AWS credentials: deploy plans against an
// empty bucket instead of failing, says so, and writes nothing.
func TestForkWithoutCredentialsPlans(t *testing.T) {
	e := newDeployEnv(t)
	g := newGHRun(t, prEvent(9, "opened", true))
	dir, m := writeSite(t, testsite.Spec{Pages: 3, Images: 1})
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		t.Setenv(k, "") // restored when the test ends
		os.Unsetenv(k)
	}
	code, out, _, stderr := g.step(t, "deploy", dir, "--preview", "--bucket", "s3://"+testBucket+"/www", "--endpoint", e.s3.Endpoint)
	if code != 0 {
		t.Fatalf("fork deploy: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "::notice") || !strings.Contains(stderr, "fork") {
		t.Errorf("stderr %q: want a ::notice saying the fork's run only plans", stderr)
	}
	if out["uploaded"] != strconv.Itoa(len(m.Files)) || out["build-id"] != m.BuildID {
		t.Errorf("outputs: got uploaded %q build-id %q, want the plan's %d uploads of %s", out["uploaded"], out["build-id"], len(m.Files), m.BuildID)
	}
	md, _ := os.ReadFile(g.summary)
	if !strings.Contains(string(md), "### assetctl plan") || !strings.Contains(string(md), "fork") {
		t.Errorf("step summary: want the plan and the fork notice:\n%s", md)
	}
	code, out, _, stderr = g.step(t, "deploy", "--cleanup", "--bucket", "s3://"+testBucket+"/www", "--endpoint", e.s3.Endpoint)
	if code != 0 || out["deleted"] != "0" || !strings.Contains(stderr, "nothing to clean up") {
		t.Errorf("fork cleanup: exit %d, deleted %q, stderr %q; want a no-op", code, out["deleted"], stderr)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", e.s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", e.s3.SecretKey)
	if _, keys, _ := e.published(t, ""); len(keys) != 0 {
		t.Errorf("a fork's plan wrote %d objects, want none", len(keys))
	}
}

// A plan far larger than GitHub's step-summary limit: the summary is cut
// under 1 MiB (and says so), the outputs stay bounded, and the plan file
// holds every action.
func TestHugePlanSummaryStaysUnderLimit(t *testing.T) {
	g := newGHRun(t, `{"ref":"refs/heads/main"}`)
	p := &uploader.Plan{Bucket: "b", Prefix: "www/", BuildID: "0123456789abcdef"}
	var viewer []string
	for i := range 40000 {
		path := fmt.Sprintf("docs/section-%05d/a-rather-long-page-name-%05d.html", i/100, i)
		p.Pages = append(p.Pages, uploader.Action{Op: uploader.OpUpload, Path: path, Key: "www/" + path, Reason: "new"})
		p.Invalidate = append(p.Invalidate, "/"+path)
		viewer = append(viewer, "/www/"+path)
	}
	p.ViewerPaths = []uploader.CDNPaths{{CDN: "cloudfront:E1", Source: "distribution", Paths: viewer}}
	e := &env{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	e.publishGitHub(readGitHubEnv(os.Getenv), &report{res: &uploader.Result{Plan: p, Invalidations: []string{}}, dryRun: true})

	md, err := os.ReadFile(g.summary)
	if err != nil {
		t.Fatal(err)
	}
	if len(md) >= ghactions.SummaryLimit || !strings.Contains(string(md), "left out") {
		t.Errorf("summary is %d bytes, want under %d with a note of what was left out", len(md), ghactions.SummaryLimit)
	}
	data, _ := os.ReadFile(g.output)
	if len(data) > 200<<10 {
		t.Errorf("outputs are %d bytes, want them bounded (a job's outputs share 1 MB)", len(data))
	}
	out, err := ghactions.ParseOutputs(string(data))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out["invalidated-paths"], "\n") + 1; n != maxOutputLines+1 {
		t.Errorf("invalidated-paths has %d lines, want %d and a count of the rest", n, maxOutputLines+1)
	}
	var full struct {
		Plan struct{ Pages []json.RawMessage }
	}
	if b, err := os.ReadFile(out["plan-file"]); err != nil || json.Unmarshal(b, &full) != nil || len(full.Plan.Pages) != 40000 {
		t.Errorf("plan file %s: %d pages (%v), want all 40000", out["plan-file"], len(full.Plan.Pages), err)
	}
	if c, err := os.ReadFile(out["comment-file"]); err != nil || len(c) > commentLimit {
		t.Errorf("comment file: %d bytes (%v), want at most %d", len(c), err, commentLimit)
	}
}

// A preview behind a distribution that serves the bucket root: CloudFront
// is sent the preview's viewer paths (/pr-3/...), read from the
// distribution's origin, and the outputs and the summary name them.
func TestPreviewInvalidatesViewerPaths(t *testing.T) {
	e := newDeployEnv(t)
	g := newGHRun(t, prEvent(3, "opened", false))
	moto := testsvc.StartMoto(t)
	dist := moto.CreateDistributionFor(t, testBucket, "")
	dir, _ := writeSite(t, testsite.Spec{Pages: 2})
	code, out, stdout, stderr := g.step(t, "deploy", dir, "--preview", "--bucket", "s3://"+testBucket+"/www", "--endpoint", e.s3.Endpoint,
		"--cloudfront-distribution", dist, "--cloudfront-endpoint", moto.URL)
	if code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, stderr)
	}
	invs := moto.Invalidations(t, dist)
	if len(invs) != 1 {
		t.Fatalf("got %d invalidations, want 1", len(invs))
	}
	sent := sorted(invs[0].Paths)
	for _, p := range []string{"/pr-3", "/pr-3/", "/pr-3/index.html"} {
		if !slices.Contains(sent, p) {
			t.Errorf("CloudFront was sent %v, want %s among them", sent, p)
		}
	}
	for _, p := range sent {
		if !strings.HasPrefix(p, "/pr-3") {
			t.Errorf("CloudFront was sent %s, outside the preview", p)
		}
	}
	if got := strings.Split(out["invalidated-paths"], "\n"); !slices.Equal(got, sent) {
		t.Errorf("invalidated-paths output %q, want what CloudFront was sent %q", got, sent)
	}
	if out["invalidation-ids"] != dist+"/"+invs[0].ID {
		t.Errorf("invalidation-ids %q, want %s/%s", out["invalidation-ids"], dist, invs[0].ID)
	}
	if !strings.Contains(stdout, "cloudfront:"+dist+` (origin path "", distribution)`) || !strings.Contains(stdout, "    /pr-3/index.html") {
		t.Errorf("summary does not list the viewer paths per distribution:\n%s", stdout)
	}
}
