// Package ghactions writes what a GitHub Actions step reports back to the
// runner (step outputs, the step summary) and reads what the runner tells
// a step (the triggering pull request). It is plumbing for assetctl's CLI,
// which writes these itself so that the action wrapping it stays a thin
// shell script.
package ghactions

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

// Output is one step output.
type Output struct {
	Name  string
	Value string
}

// ErrBadOutputName is returned for an output name the runner would not
// parse back (empty, or with "=", "<" or a line break).
var ErrBadOutputName = errors.New("bad output name")

// FormatOutputs encodes outputs in the runner's file-command format: every
// value in the delimiter form (name<<DELIM, value, DELIM), with a random
// delimiter per value that the value does not contain, so multi-line
// values and values that look like other outputs stay intact. The runner
// reads "\r\n" and a lone "\r" as line breaks, so they are written as
// "\n".
func FormatOutputs(outputs []Output) (string, error) {
	var b strings.Builder
	for _, o := range outputs {
		o.Value = newlines.Replace(o.Value)
		if o.Name == "" || strings.ContainsAny(o.Name, "=<\r\n") {
			return "", fmt.Errorf("%w %q", ErrBadOutputName, o.Name)
		}
		delim, err := delimiter(o.Value)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s<<%s\n%s\n%s\n", o.Name, delim, o.Value, delim)
	}
	return b.String(), nil
}

// newlines turns every line break the runner knows into "\n".
var newlines = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// delimiter is "ghadelimiter_" and 16 random bytes in hex, drawn again in
// the (astronomically unlikely) case value contains it.
func delimiter(value string) (string, error) {
	for range 10 {
		var r [16]byte
		if _, err := rand.Read(r[:]); err != nil {
			return "", fmt.Errorf("make an output delimiter: %w", err)
		}
		d := "ghadelimiter_" + hex.EncodeToString(r[:])
		if !strings.Contains(value, d) {
			return d, nil
		}
	}
	return "", errors.New("make an output delimiter: every candidate occurs in the value")
}

// AppendOutputs appends outputs to the file the runner names in
// GITHUB_OUTPUT.
func AppendOutputs(path string, outputs []Output) error {
	data, err := FormatOutputs(outputs)
	if err != nil {
		return err
	}
	return appendFile(path, data)
}

// ParseOutputs reads a GITHUB_OUTPUT file the way the runner does:
// "name=value" lines, and "name<<DELIM" blocks that end at a line that is
// exactly DELIM. Tests use it to check what a step wrote.
func ParseOutputs(data string) (map[string]string, error) {
	out := map[string]string{}
	lines := strings.Split(newlines.Replace(data), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if l == "" {
			continue
		}
		if name, delim, ok := strings.Cut(l, "<<"); ok && !strings.Contains(name, "=") {
			var val []string
			for i++; i < len(lines) && lines[i] != delim; i++ {
				val = append(val, lines[i])
			}
			if i == len(lines) {
				return nil, fmt.Errorf("parse outputs: %s: delimiter %q never closes", name, delim)
			}
			out[name] = strings.Join(val, "\n")
			continue
		}
		name, val, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("parse outputs: line %q is neither name=value nor name<<DELIM", l)
		}
		out[name] = val
	}
	return out, nil
}

// SummaryLimit is the most bytes a step summary may hold: GitHub refuses
// the whole summary of a step past 1024 KiB.
const SummaryLimit = 1 << 20

// AppendSummary appends markdown to the step summary file at path, cut so
// that the file stays under limit bytes (SummaryLimit when limit <= 0),
// counting what earlier writers of the same step put there. A cut ends on
// a line boundary and says how much was left out. It reports whether it
// cut.
func AppendSummary(path, markdown string, limit int) (cut bool, err error) {
	if limit <= 0 {
		limit = SummaryLimit
	}
	var used int64
	if st, err := os.Stat(path); err == nil {
		used = st.Size()
	}
	room := limit - int(used) - 1 // keep one byte of headroom for a newline
	if room <= 0 {
		return true, nil
	}
	if len(markdown) > room {
		markdown, cut = Truncate(markdown, room), true
	}
	return cut, appendFile(path, markdown)
}

// Truncate cuts markdown to at most n bytes: whole lines, then a note
// saying how many lines were left out. When not even the note fits, the
// result is cut at a character boundary.
func Truncate(markdown string, n int) string {
	if len(markdown) <= n {
		return markdown
	}
	lines := strings.SplitAfter(markdown, "\n")
	var b strings.Builder
	for i, l := range lines {
		note := fmt.Sprintf("\n\n_… %d more lines left out: GitHub keeps at most 1 MiB of step summary; the full plan is in the plan file._\n", len(lines)-i)
		if b.Len()+len(l)+len(note) > n {
			if b.Len()+len(note) <= n {
				b.WriteString(note)
			}
			break
		}
		b.WriteString(l)
	}
	out := b.String()
	if len(out) > n {
		out = out[:n]
	}
	for len(out) > 0 && !utf8.ValidString(out) {
		out = out[:len(out)-1]
	}
	return out
}

func appendFile(path, data string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// PullRequest is the pull request a workflow run was triggered by.
type PullRequest struct {
	Number int
	// Action is the event's activity type: opened, synchronize, reopened,
	// closed, ...
	Action string
	// Fork reports a pull request from another repository, whose runs get
	// no secrets and no OIDC token.
	Fork bool
}

// ErrNoPullRequest means the run was not triggered by a pull request.
var ErrNoPullRequest = errors.New("not a pull request event")

// ReadPullRequest reads the pull request from the event payload the runner
// names in GITHUB_EVENT_PATH (pull_request and pull_request_target events).
func ReadPullRequest(eventPath string) (*PullRequest, error) {
	if eventPath == "" {
		return nil, fmt.Errorf("%w: GITHUB_EVENT_PATH is not set", ErrNoPullRequest)
	}
	data, err := os.ReadFile(eventPath)
	if err != nil {
		return nil, fmt.Errorf("read the event payload: %w", err)
	}
	var ev struct {
		Action      string `json:"action"`
		Number      int    `json:"number"`
		PullRequest *struct {
			Number int `json:"number"`
			Head   struct {
				Repo *struct {
					FullName string `json:"full_name"`
				} `json:"repo"`
			} `json:"head"`
			Base struct {
				Repo *struct {
					FullName string `json:"full_name"`
				} `json:"repo"`
			} `json:"base"`
		} `json:"pull_request"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("decode the event payload %s: %w", eventPath, err)
	}
	if ev.PullRequest == nil {
		return nil, fmt.Errorf("%w: the event payload has no pull_request", ErrNoPullRequest)
	}
	pr := &PullRequest{Number: ev.PullRequest.Number, Action: ev.Action}
	if pr.Number == 0 {
		pr.Number = ev.Number
	}
	if pr.Number <= 0 {
		return nil, fmt.Errorf("%w: the pull request has no number", ErrNoPullRequest)
	}
	if h, b := ev.PullRequest.Head.Repo, ev.PullRequest.Base.Repo; h != nil && b != nil && h.FullName != b.FullName {
		pr.Fork = true
	}
	return pr, nil
}
