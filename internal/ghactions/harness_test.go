package ghactions_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/internal/ghactions"
	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// runner executes action.yml's composite steps the way the GitHub runner
// does: each step's env: and working-directory: evaluated (inputs, github,
// runner and steps contexts), its run: script run by
// `bash --noprofile --norc -eo pipefail`, with fresh GITHUB_OUTPUT and
// GITHUB_STEP_SUMMARY files and, as on GitHub (not as under act), no
// INPUT_* variables. The action's outputs are resolved from the steps'.
type runner struct {
	t       *testing.T
	action  *actionMeta
	root    string // the action's checkout (github.action_path)
	temp    string // RUNNER_TEMP
	cache   string // RUNNER_TOOL_CACHE
	baseEnv []string
	path    []string // GITHUB_PATH additions, newest first, for later steps
}

func newRunner(t *testing.T, env []string) *runner {
	t.Helper()
	a, _ := readAction(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{t: t, action: a, root: root, temp: t.TempDir(), cache: t.TempDir()}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "ASSETCTL_") ||
			strings.HasPrefix(k, "GITHUB_") || strings.HasPrefix(k, "INPUT_") {
			continue
		}
		r.baseEnv = append(r.baseEnv, kv)
	}
	r.baseEnv = append(r.baseEnv, env...)
	r.baseEnv = append(r.baseEnv, "GITHUB_ACTIONS=true", "CI=true", "RUNNER_OS=Linux", "RUNNER_ARCH=X64",
		"RUNNER_TEMP="+r.temp, "RUNNER_TOOL_CACHE="+r.cache, "GITHUB_ACTION_PATH="+root)
	return r
}

// stepResult is what one run of the action produced.
type stepResult struct {
	outputs map[string]string // the action's declared outputs
	summary string
	log     string
}

var ctxExprRe = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)

// run runs the action with inputs (the rest take their defaults) for the
// event payload in eventPath, from the working directory workdir.
func (r *runner) run(inputs map[string]string, eventPath, workdir string) stepResult {
	t := r.t
	t.Helper()
	for k := range inputs {
		if _, ok := r.action.Inputs[k]; !ok {
			t.Fatalf("input %q is not declared in action.yml", k)
		}
	}
	steps := map[string]map[string]string{}
	eval := func(s string) string {
		return ctxExprRe.ReplaceAllStringFunc(s, func(m string) string {
			e := ctxExprRe.FindStringSubmatch(m)[1]
			switch {
			case strings.HasPrefix(e, "inputs."):
				name := strings.TrimPrefix(e, "inputs.")
				if v, ok := inputs[name]; ok {
					return v
				}
				in, ok := r.action.Inputs[name]
				if !ok {
					t.Fatalf("action.yml uses undeclared input %s", name)
				}
				return in.Default
			case e == "github.action_path":
				return r.root
			case e == "github.action_ref", e == "github.action_repository":
				return "" // as on GitHub for a local action (uses: ./)
			case e == "runner.temp":
				return r.temp
			case strings.HasPrefix(e, "steps."):
				parts := strings.Split(e, ".")
				if len(parts) != 4 || parts[2] != "outputs" {
					t.Fatalf("unsupported expression %q", e)
				}
				return steps[parts[1]][parts[3]]
			}
			t.Fatalf("the test runner does not evaluate %q", e)
			return ""
		})
	}
	var summary, log strings.Builder
	for _, s := range r.action.Runs.Steps {
		dir := t.TempDir()
		out, sum := filepath.Join(dir, "output"), filepath.Join(dir, "summary")
		script := filepath.Join(dir, "step.sh")
		if err := os.WriteFile(script, []byte(s.Run), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", script)
		cmd.Dir = workdir
		if wd := eval(s.WorkingDirectory); wd != "" {
			cmd.Dir = filepath.Join(workdir, wd)
		}
		cmd.Env = append(append([]string(nil), r.baseEnv...), "GITHUB_OUTPUT="+out, "GITHUB_STEP_SUMMARY="+sum,
			"GITHUB_EVENT_PATH="+eventPath, "GITHUB_PATH="+filepath.Join(dir, "path"), "GITHUB_ENV="+filepath.Join(dir, "env"))
		for k, v := range s.Env {
			cmd.Env = append(cmd.Env, k+"="+eval(v))
		}
		if len(r.path) > 0 {
			cmd.Env = append(cmd.Env, "PATH="+strings.Join(r.path, string(os.PathListSeparator))+string(os.PathListSeparator)+os.Getenv("PATH"))
		}
		b, err := cmd.CombinedOutput()
		log.Write(b)
		if err != nil {
			t.Fatalf("step %s: %v\n%s", s.ID, err, log.String())
		}
		data, _ := os.ReadFile(out)
		outs, err := ghactions.ParseOutputs(string(data))
		if err != nil {
			t.Fatalf("step %s: %v", s.ID, err)
		}
		steps[s.ID] = outs
		md, _ := os.ReadFile(sum)
		summary.Write(md)
		if added, err := os.ReadFile(filepath.Join(dir, "path")); err == nil {
			for _, p := range strings.Fields(string(added)) {
				r.path = append([]string{p}, r.path...)
			}
		}
	}
	res := stepResult{outputs: map[string]string{}, summary: summary.String(), log: log.String()}
	for name, o := range r.action.Outputs {
		res.outputs[name] = eval(o.Value)
	}
	return res
}

func writeEvent(t *testing.T, number int, action string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "event.json")
	ev := `{"action":"` + action + `","number":` + strconv.Itoa(number) + `,"pull_request":{"number":` + strconv.Itoa(number) +
		`,"head":{"repo":{"full_name":"o/site"}},"base":{"repo":{"full_name":"o/site"}}}}`
	if err := os.WriteFile(p, []byte(ev), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The action run for real (install: source, then build-deploy) against
// versitygw: production from a push, then a PR's preview on "opened" and
// its cleanup on "closed". Outputs are parsed back as the runner would,
// and the bucket is checked with the AWS SDK.
func TestActionRunsPreviewLifecycle(t *testing.T) {
	s3srv := testsvc.StartS3(t)
	s3srv.CreateBucket(t, "site-bucket")
	var awsEnv []string
	for _, kv := range s3srv.Env() {
		if !strings.HasPrefix(kv, "AWS_ENDPOINT_URL") { // the action passes endpoint explicitly
			awsEnv = append(awsEnv, kv)
		}
	}
	r := newRunner(t, awsEnv)
	work := t.TempDir()
	if out, err := exec.Command("cp", "-r", filepath.Join(r.root, "examples/site"), filepath.Join(work, "site")).CombinedOutput(); err != nil {
		t.Fatalf("copy the example site: %v\n%s", err, out)
	}
	client := s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(s3srv.AccessKey, s3srv.SecretKey, "")},
		func(o *s3.Options) { o.BaseEndpoint = aws.String(s3srv.Endpoint); o.UsePathStyle = true })
	keys := func(prefix string) []string {
		t.Helper()
		var out []string
		p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String("site-bucket"), Prefix: aws.String(prefix)})
		for p.HasMorePages() {
			page, err := p.NextPage(context.Background())
			if err != nil {
				t.Fatalf("list %s: %v", prefix, err)
			}
			for _, o := range page.Contents {
				out = append(out, aws.ToString(o.Key))
			}
		}
		return out
	}
	inputs := map[string]string{"install": "source", "site-dir": "site", "out-dir": "dist", "bucket": "s3://site-bucket/www",
		"endpoint": s3srv.Endpoint, "region": "us-east-1", "base-url": "https://cdn.example.com", "args": "--concurrency 4"}
	push := filepath.Join(t.TempDir(), "push.json")
	os.WriteFile(push, []byte(`{"ref":"refs/heads/main"}`), 0o644)

	prod := r.run(inputs, push, work)
	if got := prod.outputs["url"]; got != "https://cdn.example.com/www/" {
		t.Errorf("production url: got %q\n%s", got, prod.log)
	}
	n, _ := strconv.Atoi(prod.outputs["uploaded"])
	if n == 0 || prod.outputs["build-id"] == "" || !strings.Contains(prod.summary, "### assetctl deploy") {
		t.Fatalf("production deploy: outputs %v, summary %q", prod.outputs, prod.summary)
	}
	if prod.outputs["manifest-file"] != filepath.Join(work, "dist", "manifest.json") {
		t.Errorf("manifest-file: got %q, want %s", prod.outputs["manifest-file"], filepath.Join(work, "dist", "manifest.json"))
	}
	if v := prod.outputs["assetctl-version"]; v == "" {
		t.Errorf("assetctl-version is empty")
	}
	live := keys("www/")

	// Later runs find the binary the first one put on PATH (GITHUB_PATH).
	inputs["install"] = "skip"
	inputs["preview"] = "true"
	pr := r.run(inputs, writeEvent(t, 12, "opened"), work)
	if got := pr.outputs["url"]; got != "https://cdn.example.com/pr-12/" {
		t.Errorf("preview url: got %q\n%s", got, pr.log)
	}
	if pr.outputs["uploaded"] != prod.outputs["uploaded"] || pr.outputs["build-id"] != prod.outputs["build-id"] {
		t.Errorf("preview of the same build: got uploaded %q build %q, want %q %q", pr.outputs["uploaded"], pr.outputs["build-id"],
			prod.outputs["uploaded"], prod.outputs["build-id"])
	}
	previewKeys := keys("pr-12/")
	if len(previewKeys) <= n {
		t.Fatalf("pr-12/ holds %d objects, want the %d outputs and the deploy record", len(previewKeys), n)
	}
	if comment := pr.outputs["comment-file"]; comment == "" {
		t.Errorf("no comment-file output")
	} else if b, err := os.ReadFile(comment); err != nil || !strings.Contains(string(b), "https://cdn.example.com/pr-12/") {
		t.Errorf("comment file: %q (%v), want the preview URL", b, err)
	}

	inputs["command"] = "preview-cleanup"
	gone := r.run(inputs, writeEvent(t, 12, "closed"), work)
	if gone.outputs["deleted"] != strconv.Itoa(len(previewKeys)) {
		t.Errorf("cleanup: deleted %q, want %d\n%s", gone.outputs["deleted"], len(previewKeys), gone.log)
	}
	if left := keys("pr-12/"); len(left) != 0 {
		t.Errorf("after cleanup pr-12/ still holds %v", left)
	}
	if after := keys("www/"); strings.Join(after, "\n") != strings.Join(live, "\n") {
		t.Errorf("the cleanup changed production: %d objects before, %d after", len(live), len(after))
	}
	if !strings.Contains(gone.summary, "### assetctl cleanup") {
		t.Errorf("cleanup summary: %q", gone.summary)
	}
}
