package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/uploader"
)

func TestDeployProgressBar(t *testing.T) {
	var buf bytes.Buffer
	p := &deployProgress{w: &buf, tty: true}
	p.Step("assets", 2, 3<<20)
	p.Done(uploader.Action{Op: uploader.OpUpload, Path: "a.png", Size: 1 << 20})
	p.Done(uploader.Action{Op: uploader.OpUpload, Path: "b.png", Size: 2 << 20})
	p.Step("prune", 4, 0)
	p.Done(uploader.Action{Op: uploader.OpDelete, Path: "old.png"})
	p.finish()
	out := buf.String()
	for _, want := range []string{"assets", "2 files", "MB", "prune"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress bar output lacks %q: %q", want, out)
		}
	}
}

func TestDeployProgressQuiet(t *testing.T) {
	var buf bytes.Buffer
	p := newDeployProgress(&buf, true)
	p.Step("assets", 2, 10)
	p.Done(uploader.Action{Size: 10})
	p.finish()
	if buf.Len() != 0 {
		t.Errorf("quiet progress (--json, --dry-run) wrote %q, want nothing", buf.String())
	}
}
