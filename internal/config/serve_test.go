package config

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

const serveYAML = `serve:
  addr: 127.0.0.1:9000
  cdn-url: https://cdn.example.com/site/
  manifest: s3://b/site
  poll-interval: 2s
  shard: [s0=postgres://a/s0, s1=postgres://a/s1]
  l1: true
  collections:
    - name: products
      public-read: true
    - name: users
      unique: [email]
  routes:
    - path: /products/{id}
      template: product.html
      document: products
      cache: {s-maxage: 5m, stale-while-revalidate: 1m, stale-if-error: 1h}
    - path: /{$}
      template: index.html
      list: products
      limit: 12
    - path: /users/{id}
      template: user.html
      document: users
      cache: {private: true}
`

func TestServeSection(t *testing.T) {
	f, err := Parse("assetctl.yaml", []byte(serveYAML))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Serve
	if len(s.Collections) != 2 || !s.Collections[0].PublicRead || s.Collections[1].Unique[0] != "email" {
		t.Errorf("got collections %+v, want products (public) and users (unique email)", s.Collections)
	}
	if r := s.Routes[0].Cache; r.SMaxAge != 5*time.Minute || r.StaleWhileRevalidate != time.Minute || r.StaleIfError != time.Hour || !s.Routes[2].Cache.Private {
		t.Errorf("got caches %+v and %+v, want 5m/1m/1h and private", r, s.Routes[2].Cache)
	}
	if s.Routes[1].ListLimit() != 12 || s.Routes[0].IDParam() != "id" {
		t.Errorf("got limit %d param %q, want 12 and id", s.Routes[1].ListLimit(), s.Routes[0].IDParam())
	}

	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "")
	poll := fs.Duration("poll-interval", 10*time.Second, "")
	shards := fs.StringArray("shard", nil, "")
	l1 := fs.Bool("l1", false, "")
	redis := fs.String("redis", "", "")
	env := map[string]string{"ASSETCTL_REDIS": "127.0.0.1:6390"}
	if err := Apply(fs, &f.Serve, f.Path, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *addr != "127.0.0.1:9000" || *poll != 2*time.Second || len(*shards) != 2 || !*l1 || *redis != "127.0.0.1:6390" {
		t.Errorf("got addr %q poll %v shards %v l1 %v redis %q, want the file's values and redis from the environment", *addr, *poll, *shards, *l1, *redis)
	}
	names, dsns, err := ParseShards(*shards)
	if err != nil || strings.Join(names, ",") != "s0,s1" || dsns[1] != "postgres://a/s1" {
		t.Errorf("ParseShards: got %v %v %v, want [s0 s1] and their DSNs", names, dsns, err)
	}
}

func TestServeValidationNamesLine(t *testing.T) {
	tests := []struct {
		name, from, to, want string
	}{
		{"unknown key", "      limit: 12\n", "      limt: 12\n", `assetctl.yaml: [21:7] unknown field "limt"`},
		{"undeclared collection", "      document: users\n", "      document: user\n", `assetctl.yaml:24: serve.routes[2].document: collection "user" is not declared`},
		{"bad pattern", "/products/{id}", "/products/{id", `assetctl.yaml:14: serve.routes[0].path: path "/products/{id" is not a valid pattern`},
		{"no wildcard", "/users/{id}", "/users/me", `assetctl.yaml:22: serve.routes[2].path: path "/users/me" has no {id} wildcard`},
		{"private with ttl", "{private: true}", "{private: true, s-maxage: 1m}", `assetctl.yaml:25: serve.routes[2].cache: a private page is never cached`},
		{"template path", "template: user.html", "template: ../user.html", `assetctl.yaml:23: serve.routes[2].template`},
		{"bad collection name", "- name: users", "- name: Users", `assetctl.yaml:11: serve.collections[1].name: collection name "Users"`},
		{"limit without list", "      document: products\n", "      document: products\n      limit: 3\n", `serve.routes[0].limit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(serveYAML, tt.from) {
				t.Fatalf("fixture lacks %q", tt.from)
			}
			_, err := Parse("assetctl.yaml", []byte(strings.Replace(serveYAML, tt.from, tt.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseShardsErrors(t *testing.T) {
	for _, in := range [][]string{nil, {"s0"}, {"=dsn"}, {"s0=a", "s0=b"}, {"s0= "}} {
		if _, _, err := ParseShards(in); err == nil {
			t.Errorf("ParseShards(%q): got no error, want one", in)
		}
	}
}

func TestExampleSiteServeConfig(t *testing.T) {
	f, err := Load("", "../../examples/site")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Serve.Shards) != 4 || len(f.Serve.Routes) != 3 || len(f.Serve.Collections) != 2 {
		t.Errorf("got %d shards, %d routes, %d collections, want 4, 3 and 2", len(f.Serve.Shards), len(f.Serve.Routes), len(f.Serve.Collections))
	}
}

// FuzzParseServe feeds arbitrary serve: sections to the strict decoder and
// the route validation: never a panic, and every error names the file.
func FuzzParseServe(f *testing.F) {
	f.Add([]byte(serveYAML))
	f.Add([]byte("serve:\n  routes:\n    - path: /{a}/{a}\n      template: x.html\n"))
	f.Add([]byte("serve:\n  collections: [{name: a}]\n  routes:\n    - {path: '/x/{id...}', template: t.html, document: a, cache: {s-maxage: 1.5s}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		f, err := Parse("assetctl.yaml", data)
		if err != nil {
			if !strings.Contains(err.Error(), "assetctl.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for _, r := range f.Serve.Routes {
			if err := checkPattern(r.Path); err != nil {
				t.Fatalf("accepted route %q: %v", r.Path, err)
			}
		}
	})
}
