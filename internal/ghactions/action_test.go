package ghactions_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/rhysd/actionlint"
)

// repoRoot is the repository root, where action.yml lives.
const repoRoot = "../.."

// actionMeta is action.yml, decoded strictly: an unknown key (a typo such as
// "shel:" or "outputz:") fails the decode.
type actionMeta struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Author      string `yaml:"author"`
	Branding    struct {
		Icon  string `yaml:"icon"`
		Color string `yaml:"color"`
	} `yaml:"branding"`
	Inputs  map[string]actionInput  `yaml:"inputs"`
	Outputs map[string]actionOutput `yaml:"outputs"`
	Runs    struct {
		Using string       `yaml:"using"`
		Steps []actionStep `yaml:"steps"`
	} `yaml:"runs"`
}

type actionInput struct {
	Description        string `yaml:"description"`
	Required           bool   `yaml:"required"`
	Default            string `yaml:"default"`
	DeprecationMessage string `yaml:"deprecationMessage"`
}

type actionOutput struct {
	Description string `yaml:"description"`
	Value       string `yaml:"value"`
}

type actionStep struct {
	ID               string            `yaml:"id"`
	Name             string            `yaml:"name"`
	If               string            `yaml:"if"`
	Shell            string            `yaml:"shell"`
	Run              string            `yaml:"run"`
	Uses             string            `yaml:"uses"`
	With             map[string]string `yaml:"with"`
	Env              map[string]string `yaml:"env"`
	WorkingDirectory string            `yaml:"working-directory"`
}

func readAction(t *testing.T) (*actionMeta, []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var a actionMeta
	if err := yaml.UnmarshalWithOptions(data, &a, yaml.Strict()); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	return &a, data
}

var (
	exprRe     = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)
	kebabRe    = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
	inputRefRe = regexp.MustCompile(`inputs\.([a-zA-Z0-9_-]+)`)
	stepRefRe  = regexp.MustCompile(`^steps\.([a-z0-9_-]+)\.outputs\.([a-z0-9_-]+)$`)
)

// The action metadata rules the runner and the Marketplace apply, which
// actionlint does not check on action.yml itself: every input and output
// described and kebab-case; every output's value names a step that
// exists; every step a bash run step with no expression inside run: (the
// values come through env:, never spliced into the script) and no INPUT_*
// (composite steps do not get them); every inputs.X that is used exists,
// and every input is used.
func TestActionMetadata(t *testing.T) {
	a, _ := readAction(t)
	if a.Name == "" || a.Description == "" || a.Runs.Using != "composite" {
		t.Errorf("name %q, description %q, runs.using %q: want a named, described composite action", a.Name, a.Description, a.Runs.Using)
	}
	stepIDs := map[string]bool{}
	used := map[string]bool{}
	for i, s := range a.Runs.Steps {
		where := "runs.steps[" + s.ID + "]"
		if s.ID == "" {
			t.Errorf("runs.steps[%d]: no id", i)
		}
		stepIDs[s.ID] = true
		if s.Uses != "" || s.Run == "" {
			t.Errorf("%s: want a run: step (a thin bash wrapper), got uses %q", where, s.Uses)
		}
		if s.Shell != "bash" {
			t.Errorf("%s: shell %q, want bash (Linux, macOS and Windows runners all have it)", where, s.Shell)
		}
		if strings.Contains(s.Run, "${{") {
			t.Errorf("%s: run: contains an expression; pass values through env:", where)
		}
		if strings.Contains(s.Run, "INPUT_") {
			t.Errorf("%s: run: reads INPUT_*, which composite steps do not get", where)
		}
		for k, v := range s.Env {
			if strings.HasPrefix(k, "INPUT_") {
				t.Errorf("%s: env %s: INPUT_* names are the runner's", where, k)
			}
			for _, m := range exprRe.FindAllStringSubmatch(v, -1) {
				for _, r := range inputRefRe.FindAllStringSubmatch(m[1], -1) {
					used[r[1]] = true
				}
			}
		}
		for _, m := range exprRe.FindAllStringSubmatch(s.WorkingDirectory, -1) {
			for _, r := range inputRefRe.FindAllStringSubmatch(m[1], -1) {
				used[r[1]] = true
			}
		}
	}
	for name, in := range a.Inputs {
		if !kebabRe.MatchString(name) {
			t.Errorf("input %q: want kebab-case", name)
		}
		if strings.TrimSpace(in.Description) == "" {
			t.Errorf("input %q: no description", name)
		}
		if strings.Contains(in.Default, "${{") {
			t.Errorf("input %q: default %q uses an expression", name, in.Default)
		}
		if !used[name] {
			t.Errorf("input %q is never passed to a step", name)
		}
		if strings.Contains(strings.ToLower(name), "secret") || strings.Contains(strings.ToLower(name), "access-key") {
			t.Errorf("input %q looks like a credential: credentials come from the environment (OIDC)", name)
		}
	}
	for name := range used {
		if _, ok := a.Inputs[name]; !ok {
			t.Errorf("a step uses inputs.%s, which action.yml does not declare", name)
		}
	}
	want := []string{"build-id", "url", "uploaded", "unchanged", "deleted", "invalidation-ids", "invalidated-paths",
		"plan-file", "manifest-file", "assetctl-version"}
	for _, o := range want {
		if _, ok := a.Outputs[o]; !ok {
			t.Errorf("output %q is missing", o)
		}
	}
	for name, o := range a.Outputs {
		if !kebabRe.MatchString(name) || strings.TrimSpace(o.Description) == "" {
			t.Errorf("output %q: want kebab-case with a description", name)
		}
		m := exprRe.FindStringSubmatch(o.Value)
		if m == nil {
			t.Errorf("output %q: value %q is not an expression", name, o.Value)
			continue
		}
		ref := stepRefRe.FindStringSubmatch(m[1])
		if ref == nil || !stepIDs[ref[1]] {
			t.Errorf("output %q: value %q does not name a step's output", name, o.Value)
		}
	}
	for _, in := range []string{"command", "working-directory", "config", "site-dir", "out-dir", "bucket", "region", "endpoint",
		"cloudfront-distribution", "purge-url", "base-url", "keep", "grace", "max-deletes", "dry-run", "preview", "args", "install", "version"} {
		if _, ok := a.Inputs[in]; !ok {
			t.Errorf("input %q is missing", in)
		}
	}
}

func newLinter(t *testing.T) (*actionlint.Linter, *actionlint.Project, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	opts := &actionlint.LinterOptions{}
	// shellcheck (Debian package shellcheck) also checks every run: script.
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		opts.Shellcheck = sc
	} else {
		t.Logf("shellcheck is not installed (apt-get install shellcheck): run: scripts are not shell-checked")
	}
	l, err := actionlint.NewLinter(&out, opts)
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	proj, err := actionlint.NewProject(root)
	if err != nil {
		t.Fatal(err)
	}
	return l, proj, &out
}

func lint(t *testing.T, l *actionlint.Linter, proj *actionlint.Project, path string, content []byte) []*actionlint.Error {
	t.Helper()
	errs, err := l.Lint(path, content, proj)
	if err != nil {
		t.Fatalf("lint %s: %v", path, err)
	}
	return errs
}

// The example workflows and the self-test (which calls `uses: ./` with
// every input and reads every output) pass actionlint, which checks the
// inputs and outputs against action.yml; a misspelt input is caught.
func TestWorkflowsLint(t *testing.T) {
	l, proj, _ := newLinter(t)
	files, err := filepath.Glob(filepath.Join(repoRoot, "examples/github/*.yml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("examples/github: got %v (%v), want the deploy, preview and release workflows", files, err)
	}
	files = append(files, "testdata/selftest.yml")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		abs, _ := filepath.Abs(f)
		for _, e := range lint(t, l, proj, abs, data) {
			t.Errorf("%s:%d:%d: %s [%s]", f, e.Line, e.Column, e.Message, e.Kind)
		}
	}

	// The negative control: a typo in an input name and in an output name.
	self, _ := os.ReadFile("testdata/selftest.yml")
	bad := strings.Replace(string(self), "dry-run:", "dri-run:", 1)
	bad = strings.Replace(bad, "outputs.build-id", "outputs.bild-id", 1)
	abs, _ := filepath.Abs("testdata/selftest.yml")
	var msgs []string
	for _, e := range lint(t, l, proj, abs, []byte(bad)) {
		msgs = append(msgs, e.Message)
	}
	joined := strings.Join(msgs, "\n")
	if !strings.Contains(joined, `"dri-run" is not defined`) || !strings.Contains(joined, "bild-id") {
		t.Errorf("a misspelt input and output: got %q, want both reported", joined)
	}
}

// actionlint does not look inside a composite action's steps, so they are
// wrapped in a reusable workflow (on: workflow_call, with the action's
// inputs) and linted as one: expressions, contexts and step references.
func TestCompositeStepsLint(t *testing.T) {
	a, _ := readAction(t)
	type wfInput struct {
		Description string `yaml:"description"`
		Type        string `yaml:"type"`
		Default     string `yaml:"default"`
	}
	type wfStep struct {
		ID               string            `yaml:"id"`
		Shell            string            `yaml:"shell"`
		WorkingDirectory string            `yaml:"working-directory,omitempty"`
		Env              map[string]string `yaml:"env,omitempty"`
		Run              string            `yaml:"run"`
	}
	inputs := map[string]wfInput{}
	for n, in := range a.Inputs {
		inputs[n] = wfInput{Description: in.Description, Type: "string", Default: in.Default}
	}
	var steps []wfStep
	for _, s := range a.Runs.Steps {
		steps = append(steps, wfStep{ID: s.ID, Shell: s.Shell, WorkingDirectory: s.WorkingDirectory, Env: s.Env, Run: s.Run})
	}
	wf := map[string]any{
		"name": "composite-steps",
		"on":   map[string]any{"workflow_call": map[string]any{"inputs": inputs}},
		"jobs": map[string]any{"steps": map[string]any{"runs-on": "ubuntu-latest", "steps": steps}},
	}
	data, err := yaml.Marshal(wf)
	if err != nil {
		t.Fatal(err)
	}
	l, proj, _ := newLinter(t)
	path, _ := filepath.Abs(filepath.Join(repoRoot, ".github/workflows/composite-steps.yml")) // never written
	for _, e := range lint(t, l, proj, path, data) {
		t.Errorf("composite steps (wrapped): line %d: %s [%s]\n%s", e.Line, e.Message, e.Kind, data)
	}
	// The control: a misspelt input reference in a step is caught.
	bad := strings.Replace(string(data), "inputs.dry-run", "inputs.dry_run", 1)
	errs := lint(t, l, proj, path, []byte(bad))
	if !slices.ContainsFunc(errs, func(e *actionlint.Error) bool { return strings.Contains(e.Message, "dry_run") }) {
		t.Errorf("inputs.dry_run in a wrapped step was not reported")
	}
}

// The action's own scripts pass shellcheck.
func TestActionScriptsShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatalf("shellcheck is not installed: apt-get install shellcheck")
	}
	scripts, _ := filepath.Glob(filepath.Join(repoRoot, "scripts/action/*.sh"))
	sort.Strings(scripts)
	if len(scripts) < 2 {
		t.Fatalf("got scripts %v, want install.sh and run.sh", scripts)
	}
	out, err := exec.Command(sc, append([]string{"-s", "bash"}, scripts...)...).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}
