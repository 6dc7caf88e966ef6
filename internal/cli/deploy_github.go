package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/assetctl/assetctl/internal/ghactions"
	"github.com/assetctl/assetctl/uploader"
)

// githubEnv is what a GitHub Actions runner tells a step through its
// environment. Outside Actions every field is empty.
type githubEnv struct {
	output     string // GITHUB_OUTPUT: the step-outputs file
	summary    string // GITHUB_STEP_SUMMARY
	eventPath  string // GITHUB_EVENT_PATH: the triggering event's payload
	runnerTemp string // RUNNER_TEMP: where plan files go
}

func readGitHubEnv(getenv func(string) string) githubEnv {
	return githubEnv{output: getenv("GITHUB_OUTPUT"), summary: getenv("GITHUB_STEP_SUMMARY"),
		eventPath: getenv("GITHUB_EVENT_PATH"), runnerTemp: getenv("RUNNER_TEMP")}
}

// autoPrefix is --preview or --cleanup given without a prefix: "pr-N" from
// the pull request that triggered the run.
const autoPrefix = "auto"

// previewPrefix resolves --preview/--cleanup: a key prefix relative to the
// bucket root, or "auto" for pr-N of the triggering pull request.
func previewPrefix(flag, value string, gh githubEnv) (string, error) {
	if value == autoPrefix {
		pr, err := ghactions.ReadPullRequest(gh.eventPath)
		if err != nil {
			return "", fmt.Errorf("--%s without a prefix names the pull request's preview, pr-N: %w (give --%s=PREFIX)", flag, err, flag)
		}
		return "pr-" + strconv.Itoa(pr.Number), nil
	}
	p := strings.Trim(value, "/")
	if p == "" || strings.Contains(p, "//") || strings.Contains("/"+p+"/", "/../") || strings.Contains("/"+p+"/", "/./") {
		return "", fmt.Errorf("--%s %q: want a clean key prefix such as pr-123 or previews/pr-123", flag, value)
	}
	return p, nil
}

// contains reports whether prefix a holds prefix b: equal, a parent of it,
// or the bucket root.
func contains(a, b string) bool {
	return a == "" || a == b || strings.HasPrefix(b, a+"/")
}

// forkWithoutCredentials reports a run for a fork's pull request that got
// no AWS credentials (forks get no secrets and no OIDC token): deploy then
// falls back to a plan against an empty bucket.
func forkWithoutCredentials(gh githubEnv, getenv func(string) string) bool {
	pr, err := ghactions.ReadPullRequest(gh.eventPath)
	if err != nil || !pr.Fork {
		return false
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		if getenv(k) != "" {
			return false
		}
	}
	return true
}

// siteURL is where viewers find the deployed prefix: the base URL (where
// the bucket root is served) plus the prefix's viewer path under
// originPath. "" without a base URL, or when the prefix is outside the
// origin path.
func siteURL(baseURL, prefix, originPath string) string {
	if baseURL == "" {
		return ""
	}
	p := "/"
	if prefix != "" {
		p = "/" + strings.Trim(prefix, "/") + "/"
	}
	op, _ := uploader.CleanOriginPath(originPath)
	if op != "" {
		rest, ok := strings.CutPrefix(p, op)
		if !ok || !strings.HasPrefix(rest, "/") {
			return ""
		}
		p = rest
	}
	return strings.TrimSuffix(baseURL, "/") + p
}

// report is what one run of deploy hands back to GitHub Actions.
type report struct {
	res      *uploader.Result
	cleanup  *uploader.CleanupResult
	err      error
	dryRun   bool
	url      string
	outDir   string
	planFile string
	comment  string // the PR-comment body's file
	notice   string // why the run fell back to a plan, if it did
}

// maxOutputLines bounds a multi-line output: a job's outputs share 1 MB.
const maxOutputLines = 1000

// outputs are the step outputs the action declares.
func (r *report) outputs() []ghactions.Output {
	var out []ghactions.Output
	add := func(name, value string) { out = append(out, ghactions.Output{Name: name, Value: value}) }
	add("assetctl-version", versionString())
	add("url", r.url)
	add("plan-file", r.planFile)
	add("comment-file", r.comment)
	if r.outDir != "" {
		if abs, err := filepath.Abs(filepath.Join(r.outDir, "manifest.json")); err == nil {
			add("manifest-file", abs)
		}
	}
	if r.cleanup != nil {
		add("deleted", strconv.Itoa(r.cleanup.Deleted))
		return out
	}
	if r.res == nil {
		return out
	}
	res, p := r.res, r.res.Plan
	add("build-id", p.BuildID)
	uploaded, deleted := res.Uploaded, res.Deleted
	if r.dryRun { // what the plan would do
		uploaded, deleted = countOps(p.Assets, uploader.OpUpload)+countOps(p.Pages, uploader.OpUpload), len(p.Removes)+len(p.Prune)
	}
	add("uploaded", strconv.Itoa(uploaded))
	add("unchanged", strconv.Itoa(res.Skipped))
	add("deleted", strconv.Itoa(deleted))
	add("invalidation-ids", strings.Join(res.Invalidations, "\n"))
	add("invalidated-paths", strings.Join(capLines(viewerPathList(p)), "\n"))
	return out
}

func countOps(actions []uploader.Action, op uploader.Op) int {
	n := 0
	for _, a := range actions {
		if a.Op == op {
			n++
		}
	}
	return n
}

// viewerPathList is every viewer path of every CDN, "CDN PATH" when there
// are several CDNs, sorted.
func viewerPathList(p *uploader.Plan) []string {
	var out []string
	for _, c := range p.ViewerPaths {
		for _, vp := range c.Paths {
			if len(p.ViewerPaths) > 1 {
				vp = c.CDN + " " + vp
			}
			out = append(out, vp)
		}
	}
	sort.Strings(out)
	return out
}

func capLines(lines []string) []string {
	if len(lines) <= maxOutputLines {
		return lines
	}
	return append(lines[:maxOutputLines:maxOutputLines], fmt.Sprintf("… %d more", len(lines)-maxOutputLines))
}

// markdown is the step summary (and PR comment) of the run.
func (r *report) markdown() string {
	var b strings.Builder
	if r.cleanup != nil {
		c := r.cleanup
		verb := "removed"
		if c.DryRun {
			verb = "would remove"
		}
		fmt.Fprintf(&b, "### assetctl cleanup `s3://%s/%s`\n\n", c.Bucket, c.Prefix)
		if r.err != nil {
			fmt.Fprintf(&b, "❌ failed: %s\n\n", r.err)
		}
		fmt.Fprintf(&b, "%s %d objects (%s), %d deploy records of builds %s\n\n", verb, c.Deleted, humanBytes(c.Bytes), c.Records, strings.Join(c.Builds, ", "))
		return b.String()
	}
	res := r.res
	p := res.Plan
	title := "deploy"
	if r.dryRun {
		title = "plan"
	}
	fmt.Fprintf(&b, "### assetctl %s `%s` → `s3://%s/%s`\n\n", title, p.BuildID, p.Bucket, p.Prefix)
	switch {
	case r.err != nil:
		fmt.Fprintf(&b, "❌ failed: %s\n\n", r.err)
	case r.dryRun:
		b.WriteString("📝 dry run: nothing was changed\n\n")
	default:
		b.WriteString("✅ deployed\n\n")
	}
	if r.notice != "" {
		fmt.Fprintf(&b, "> %s\n\n", r.notice)
	}
	if r.url != "" {
		fmt.Fprintf(&b, "**URL:** %s\n\n", r.url)
	}
	b.WriteString("| | |\n|---|---|\n")
	if r.dryRun {
		fmt.Fprintf(&b, "| assets to upload | %d |\n| pages to publish | %d |\n| pages to remove | %d |\n| to prune | %d |\n",
			len(p.Assets), len(p.Pages), len(p.Removes), len(p.Prune))
	} else {
		fmt.Fprintf(&b, "| uploaded | %d files (%s) |\n", res.Uploaded, humanBytes(res.Bytes))
		fmt.Fprintf(&b, "| headers updated | %d |\n| deleted | %d |\n", res.HeadersSet, res.Deleted)
	}
	fmt.Fprintf(&b, "| unchanged | %d |\n", res.Skipped)
	fmt.Fprintf(&b, "| invalidated paths | %d |\n", len(p.Invalidate))
	if len(res.Invalidations) > 0 {
		fmt.Fprintf(&b, "| invalidation IDs | %s |\n", strings.Join(res.Invalidations, ", "))
	}
	if p.PruneSkipped != "" {
		fmt.Fprintf(&b, "| prune skipped | %s |\n", p.PruneSkipped)
	}
	if len(p.Drifted) > 0 {
		fmt.Fprintf(&b, "| drift put back | %d objects changed or deleted by hand |\n", len(p.Drifted))
	}
	fmt.Fprintf(&b, "| time | %s |\n\n", res.Duration.Round(time.Millisecond))
	if p.ViewerPathsError != "" {
		fmt.Fprintf(&b, "Viewer paths unknown: %s\n\n", p.ViewerPathsError)
	}
	for _, c := range p.ViewerPaths {
		fmt.Fprintf(&b, "<details><summary>%s: %d viewer paths (origin path <code>%s</code>, %s)</summary>\n\n",
			c.CDN, len(c.Paths), orNone(c.OriginPath), c.Source)
		for _, vp := range c.Paths {
			fmt.Fprintf(&b, "- `%s`\n", vp)
		}
		b.WriteString("\n</details>\n\n")
	}
	if p.Changed() || r.dryRun {
		title := "Changes"
		if r.dryRun {
			title = "Plan"
		}
		b.WriteString("<details><summary>" + title + "</summary>\n\n")
		for _, s := range []struct {
			title   string
			actions []uploader.Action
		}{{"assets", p.Assets}, {"pages", p.Pages}, {"removed pages", p.Removes}, {"prune", p.Prune}} {
			fmt.Fprintf(&b, "**%s** (%d)\n\n", s.title, len(s.actions))
			for _, a := range s.actions {
				fmt.Fprintf(&b, "- %s `%s` (%s)\n", a.Op, a.Key, a.Reason)
			}
			b.WriteString("\n")
		}
		b.WriteString("</details>\n\n")
	}
	return b.String()
}

// commentLimit keeps a PR comment under GitHub's 65,536 characters.
const commentLimit = 60000

// publish writes the plan file, the step outputs, the step summary and a
// PR-comment body next to the plan file. Failures are logged, never fatal:
// the deploy's own outcome is what the step reports.
func (e *env) publishGitHub(gh githubEnv, r *report) {
	if gh.output == "" && gh.summary == "" {
		return
	}
	md := r.markdown()
	if gh.output != "" {
		if r.planFile == "" && (r.res != nil || r.cleanup != nil) {
			r.planFile = e.writePlanFile(gh, r)
		}
		if r.planFile != "" {
			// The PR comment: the same summary, cut to a comment's size.
			comment := strings.TrimSuffix(r.planFile, ".json") + ".md"
			if err := os.WriteFile(comment, []byte(ghactions.Truncate(md, commentLimit)), 0o644); err != nil {
				e.log.Warn("write the PR comment body", "err", err)
			} else {
				r.comment = comment
			}
		}
		if err := ghactions.AppendOutputs(gh.output, r.outputs()); err != nil {
			e.log.Warn("write GitHub step outputs", "err", err)
		}
	}
	if gh.summary != "" {
		if cut, err := ghactions.AppendSummary(gh.summary, md, 0); err != nil {
			e.log.Warn("write GitHub step summary", "err", err)
		} else if cut {
			e.log.Warn("the GitHub step summary was cut to stay under 1 MiB; the plan file has everything")
		}
	}
}

// writePlanFile writes the plan (or result) as JSON into RUNNER_TEMP, or
// the system's temp dir, and returns its path.
func (e *env) writePlanFile(gh githubEnv, r *report) string {
	dir := gh.runnerTemp
	if dir == "" {
		dir = os.TempDir()
	}
	name := "assetctl-cleanup.json"
	var v any = r.cleanup
	if r.res != nil {
		name, v = "assetctl-plan-"+r.res.Plan.BuildID+".json", r.res
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, path.Base(name)), data, 0o644)
	}
	if err != nil {
		e.log.Warn("write the plan file", "err", err)
		return ""
	}
	return filepath.Join(dir, path.Base(name))
}

// errProductionCleanup is the refusal to clean up a prefix that holds the
// production site.
var errProductionCleanup = errors.New("refusing to clean up the production prefix")

// offlineStore is an empty bucket that needs no credentials: the plan of a
// fork's pull request, which gets none, is made against it (in a dry run,
// so nothing is ever written to it).
type offlineStore struct{}

var _ uploader.Store = offlineStore{}

func (offlineStore) Check(context.Context) error { return nil }
func (offlineStore) List(context.Context, string, func(uploader.Object) error) error {
	return nil
}
func (offlineStore) Head(context.Context, string) (uploader.Object, error) {
	return uploader.Object{}, uploader.ErrNotFound
}
func (offlineStore) Get(context.Context, string) ([]byte, error) { return nil, uploader.ErrNotFound }
func (offlineStore) Put(context.Context, string, io.ReaderAt, int64, uploader.Headers) error {
	return errors.New("offline plan: no writes")
}
func (offlineStore) SetHeaders(context.Context, string, uploader.Headers) error {
	return errors.New("offline plan: no writes")
}
func (offlineStore) Delete(context.Context, []string) error {
	return errors.New("offline plan: no writes")
}
