package config

import (
	"strings"
	"testing"
	"time"
)

func TestDeployRules(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"valid", "deploy:\n  rules:\n    - match: '**/*.html'\n      cache-control: no-cache\n    - match: 'fonts/*.woff2'\n      content-type: font/woff2\n", ""},
		{"bad glob", "deploy:\n  rules:\n    - match: '*.js'\n      cache-control: x\n    - match: 'img/[a-'\n      cache-control: x\n", `deploy.rules[1]: match "img/[a-" is not a valid glob`},
		{"empty match", "deploy:\n  rules:\n    - cache-control: x\n", "deploy.rules[0]: match is empty"},
		{"sets nothing", "deploy:\n  rules:\n    - match: '*.css'\n", "sets neither cache-control nor content-type"},
		{"unknown key", "deploy:\n  rules:\n    - match: '*.css'\n      cache: x\n", `unknown field "cache"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("assetctl.yaml", []byte(tt.yaml))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if len(f.Deploy.Rules) != 2 || f.Deploy.Rules[1].ContentType != "font/woff2" {
					t.Errorf("got rules %+v, want 2 with the second setting font/woff2", f.Deploy.Rules)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "assetctl.yaml") {
				t.Errorf("got error %v, want one naming assetctl.yaml and containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDeploySectionFeedsFlags(t *testing.T) {
	f, err := Parse("assetctl.yaml", []byte("deploy:\n  bucket: s3://b/site\n  grace: 2h\n  keep: 5\n  purge: [http://a, http://b]\n"))
	if err != nil {
		t.Fatal(err)
	}
	fs, _, _, _, grace, purge := newFlags()
	bucket := fs.String("bucket", "", "")
	keep := fs.Int("keep", 3, "")
	if err := Apply(fs, &f.Deploy, f.Path, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if *bucket != "s3://b/site" || *grace != 2*time.Hour || *keep != 5 || strings.Join(*purge, ",") != "http://a,http://b" {
		t.Errorf("got bucket %q grace %v keep %d purge %v, want s3://b/site 2h 5 [http://a http://b]", *bucket, *grace, *keep, *purge)
	}
}
