package ghactions

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// parse is ParseOutputs failing the test on an error.
func parse(t *testing.T, data string) map[string]string {
	t.Helper()
	out, err := ParseOutputs(data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOutputsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "output")
	if err := os.WriteFile(path, []byte("earlier=step\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := []Output{
		{"build-id", "5d0c7e2a91b4f3c8"},
		{"invalidated-paths", "/\n/index.html\n/docs/"},
		{"empty", ""},
		{"tricky", "x\nurl<<EOF\ninjected=1\nEOF\nghadelimiter_0"},
	}
	if err := AppendOutputs(path, in); err != nil {
		t.Fatalf("AppendOutputs: %v", err)
	}
	data, _ := os.ReadFile(path)
	want := map[string]string{"earlier": "step"}
	for _, o := range in {
		want[o.Name] = o.Value
	}
	if diff := cmp.Diff(want, parse(t, string(data))); diff != "" {
		t.Errorf("outputs parsed back (-want +got):\n%s", diff)
	}
	// Each value gets its own random delimiter.
	if n := strings.Count(string(data), "<<ghadelimiter_"); n != len(in) {
		t.Errorf("got %d delimiter blocks, want %d", n, len(in))
	}
	if err := AppendOutputs(path, []Output{{"a=b", "x"}}); !errors.Is(err, ErrBadOutputName) {
		t.Errorf("output name with '=': got %v, want ErrBadOutputName", err)
	}
}

func TestAppendSummaryStaysUnderLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "summary.md")
	earlier := strings.Repeat("e", 300)
	if err := os.WriteFile(path, []byte(earlier), 0o644); err != nil {
		t.Fatal(err)
	}
	var md strings.Builder
	for i := range 100 {
		md.WriteString("- `/docs/ünïcode/page" + strings.Repeat("x", i%7) + ".html`\n")
	}
	cut, err := AppendSummary(path, md.String(), 1000)
	if err != nil || !cut {
		t.Fatalf("AppendSummary: cut %v, err %v; want a cut and no error", cut, err)
	}
	data, _ := os.ReadFile(path)
	if len(data) >= 1000 {
		t.Errorf("summary is %d bytes, want under 1000", len(data))
	}
	if !strings.HasPrefix(string(data), earlier) || !utf8.Valid(data) || !strings.Contains(string(data), "more lines left out") {
		t.Errorf("summary keeps earlier steps' text, stays valid UTF-8 and says what was left out; got:\n%s", data)
	}
	// A small summary is written whole.
	small := filepath.Join(t.TempDir(), "s.md")
	if cut, err := AppendSummary(small, "### ok\n", 0); err != nil || cut {
		t.Fatalf("small summary: cut %v, err %v", cut, err)
	}
	if got, _ := os.ReadFile(small); string(got) != "### ok\n" {
		t.Errorf("small summary: got %q", got)
	}
	// The real limit: a 3 MiB summary is cut under 1 MiB.
	big := filepath.Join(t.TempDir(), "big.md")
	if _, err := AppendSummary(big, strings.Repeat("- `/a/very/long/path.html`\n", 3<<20/27), 0); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(big); st.Size() >= SummaryLimit {
		t.Errorf("summary is %d bytes, want under %d", st.Size(), SummaryLimit)
	}
}

func TestReadPullRequest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	same := `{"action":"synchronize","number":42,"pull_request":{"number":42,"head":{"repo":{"full_name":"o/r"}},"base":{"repo":{"full_name":"o/r"}}}}`
	fork := `{"action":"opened","number":7,"pull_request":{"number":7,"head":{"repo":{"full_name":"someone/r"}},"base":{"repo":{"full_name":"o/r"}}}}`
	push := `{"ref":"refs/heads/main"}`
	got, err := ReadPullRequest(write("same.json", same))
	if err != nil || *got != (PullRequest{Number: 42, Action: "synchronize"}) {
		t.Errorf("same-repo PR: got %+v, %v", got, err)
	}
	got, err = ReadPullRequest(write("fork.json", fork))
	if err != nil || *got != (PullRequest{Number: 7, Action: "opened", Fork: true}) {
		t.Errorf("fork PR: got %+v, %v", got, err)
	}
	if _, err := ReadPullRequest(write("push.json", push)); !errors.Is(err, ErrNoPullRequest) {
		t.Errorf("push event: got %v, want ErrNoPullRequest", err)
	}
	if _, err := ReadPullRequest(""); !errors.Is(err, ErrNoPullRequest) {
		t.Errorf("no event path: got %v, want ErrNoPullRequest", err)
	}
}

// Any output value, whatever lines or delimiter-like text it holds, is
// read back by the runner's parser exactly as written.
func FuzzOutputsRoundTrip(f *testing.F) {
	f.Add("build-id", "5d0c7e2a91b4f3c8")
	f.Add("paths", "/\n/index.html\nurl<<EOF\nx=y\nEOF")
	f.Add("v", "ghadelimiter_00\r\n")
	f.Add("x", "")
	f.Fuzz(func(t *testing.T, name, value string) {
		data, err := FormatOutputs([]Output{{name, value}, {"after", "sentinel"}})
		if err != nil {
			if !errors.Is(err, ErrBadOutputName) {
				t.Fatalf("FormatOutputs(%q): %v", name, err)
			}
			return
		}
		got, err := ParseOutputs(data)
		if err != nil {
			t.Fatalf("ParseOutputs: %v\n%s", err, data)
		}
		// The runner reads CRLF and CR as LF; a value is otherwise unchanged.
		want := strings.ReplaceAll(strings.ReplaceAll(value, "\r\n", "\n"), "\r", "\n")
		if got[name] != want || got["after"] != "sentinel" {
			t.Fatalf("value %q came back as %q (after: %q)", value, got[name], got["after"])
		}
	})
}

func TestTruncateKeepsWholeLines(t *testing.T) {
	md := "line one\nline two\nline three\n"
	got := Truncate(md, 9)
	if len(got) > 9 || (got != "line one\n" && !strings.HasPrefix(md, got)) {
		t.Errorf("Truncate(…, 9) = %q, want at most 9 bytes of whole lines", got)
	}
	if Truncate(md, 1000) != md {
		t.Errorf("Truncate of a short text changed it")
	}
}
