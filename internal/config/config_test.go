package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type testSection struct {
	Out     string        `yaml:"out" flag:"out"`
	Workers int           `yaml:"workers" flag:"workers"`
	SRI     *bool         `yaml:"sri" flag:"sri"`
	Grace   time.Duration `yaml:"grace" flag:"grace"`
	Purge   []string      `yaml:"purge" flag:"purge"`
	Rules   []string      `yaml:"rules"`
}

func newFlags() (*pflag.FlagSet, *string, *int, *bool, *time.Duration, *[]string) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	out := fs.String("out", "dist", "")
	workers := fs.Int("workers", 4, "")
	sri := fs.Bool("sri", true, "")
	grace := fs.Duration("grace", 24*time.Hour, "")
	purge := fs.StringArray("purge", nil, "")
	return fs, out, workers, sri, grace, purge
}

func TestApplyPrecedence(t *testing.T) {
	no := false
	sec := &testSection{Out: "from-file", Workers: 8, SRI: &no, Grace: time.Hour, Purge: []string{"a", "b"}}
	env := map[string]string{"ASSETCTL_WORKERS": "16"}

	fs, out, workers, sri, grace, purge := newFlags()
	if err := fs.Parse([]string{"--out", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := Apply(fs, sec, "assetctl.yaml", func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *out != "from-flag" {
		t.Errorf("out: got %q, want flag value", *out)
	}
	if *workers != 16 {
		t.Errorf("workers: got %d, want env value 16", *workers)
	}
	if *sri {
		t.Errorf("sri: got true, want false from file")
	}
	if *grace != time.Hour {
		t.Errorf("grace: got %v, want 1h from file", *grace)
	}
	if strings.Join(*purge, ",") != "a,b" {
		t.Errorf("purge: got %v, want [a b]", *purge)
	}
}

func TestApplyDefaultsWhenUnset(t *testing.T) {
	fs, out, workers, sri, _, _ := newFlags()
	if err := Apply(fs, &testSection{}, "", func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if *out != "dist" || *workers != 4 || !*sri {
		t.Errorf("got out=%q workers=%d sri=%v, want defaults", *out, *workers, *sri)
	}
}

func TestApplyBadEnvNamesVariable(t *testing.T) {
	fs, _, _, _, _, _ := newFlags()
	err := Apply(fs, nil, "", func(k string) string {
		if k == "ASSETCTL_WORKERS" {
			return "many"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "ASSETCTL_WORKERS") {
		t.Fatalf("got %v, want an error naming ASSETCTL_WORKERS", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	f, err := Load("", dir)
	if err != nil || f.Path != "" {
		t.Fatalf("missing default file: got %v, %q; want empty config", err, f.Path)
	}
	if _, err := Load(filepath.Join(dir, "nope.yaml"), dir); err == nil {
		t.Fatal("explicit missing file: got nil error")
	}
	bad := filepath.Join(dir, FileName)
	if err := os.WriteFile(bad, []byte("build: {}\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load("", dir)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "bogus") || !strings.Contains(err.Error(), "2:") {
		t.Fatalf("unknown key: got %v, want error naming file, line 2 and key", err)
	}
}
