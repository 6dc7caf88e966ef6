package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "assetctl ") {
		t.Fatalf("got code %d output %q, want 0 and \"assetctl <version>\"", code, out)
	}
}

func TestUnknownCommandFails(t *testing.T) {
	code, _, errOut := run(t, "frobnicate")
	if code == 0 || !strings.Contains(errOut, "frobnicate") {
		t.Fatalf("got code %d stderr %q, want non-zero naming the command", code, errOut)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, _ := run(t, "completion", shell)
		if code != 0 || !strings.Contains(out, "assetctl") {
			t.Errorf("%s: got code %d and %d bytes, want a script mentioning assetctl", shell, code, len(out))
		}
	}
}

func TestEveryCommandHasExample(t *testing.T) {
	root := newRootCmd(&env{})
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("command %q: got no --help example, want one", c.Name())
		}
	}
}
