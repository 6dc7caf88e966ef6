package cli

import (
	"strings"
	"testing"
)

func FuzzParseBucket(f *testing.F) {
	for _, s := range []string{"s3://b", "s3://b/site", "s3://b/a/b/", "s3:///x", "b/site", "s3://b//x", "s3://b/../x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bucket, prefix, err := parseBucket(s)
		if err != nil {
			return
		}
		if bucket == "" || strings.Contains(bucket, "/") {
			t.Errorf("parseBucket(%q): got bucket %q, want a non-empty name without /", s, bucket)
		}
		if strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") || strings.Contains(prefix, "//") {
			t.Errorf("parseBucket(%q): got prefix %q, want it trimmed and clean", s, prefix)
		}
		for _, seg := range strings.Split(prefix, "/") {
			if seg == ".." || seg == "." {
				t.Errorf("parseBucket(%q): got prefix %q with a dot segment", s, prefix)
			}
		}
	})
}

func TestParseBucket(t *testing.T) {
	tests := []struct{ in, bucket, prefix, err string }{
		{"s3://b", "b", "", ""},
		{"s3://b/site/", "b", "site", ""},
		{"s3://b/a/b", "b", "a/b", ""},
		{"b/site", "", "", "want s3://"},
		{"s3:///site", "", "", "bucket name is empty"},
		{"s3://b/../x", "", "", "clean path"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			b, p, err := parseBucket(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("got error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || b != tt.bucket || p != tt.prefix {
				t.Errorf("got %q %q %v, want %q %q", b, p, err, tt.bucket, tt.prefix)
			}
		})
	}
}
