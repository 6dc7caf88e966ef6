package testsvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Varnish is a running varnishd: a real caching HTTP edge in front of one
// backend, honouring the backend's Cache-Control and accepting PURGE.
type Varnish struct {
	// URL is the edge's base URL, http://127.0.0.1:PORT.
	URL string
	// Dir holds edge.vcl, the varnish working directory and the pid file.
	Dir string
	pid int
}

// VarnishOptions configures StartVarnish.
type VarnishOptions struct {
	// Backend is the origin's host:port on loopback (required).
	Backend string
	// Purgers are the ACL entries allowed to PURGE; default "127.0.0.1".
	// Set it to an address the test never uses to make every PURGE answer
	// 405 Not allowed.
	Purgers []string
	// Xkey loads the xkey vmod (Debian's varnish-modules): a PURGE with an
	// xkey-purge header ("tag1 tag2") drops every object whose xkey (or
	// Surrogate-Key) response header names one of the tags, and answers
	// 200 "Invalidated N objects". Default false: PURGE drops one URL.
	Xkey bool
}

// The edge's VCL. Varnish's built-in VCL already takes an object's TTL from
// Cache-Control (s-maxage, max-age) and refuses to cache private/no-store;
// this adds: no Cache-Control and no Expires => do not cache, PURGE from
// the ACL, and X-Cache/X-Cache-Hits headers so tests can tell hits from
// misses.
var edgeVCL = template.Must(template.New("edge.vcl").Parse(`vcl 4.1;
{{- if .Xkey}}

import xkey;
{{- end}}

backend origin { .host = "{{.Host}}"; .port = "{{.Port}}"; }

acl purgers {
{{- range .Purgers}}
  "{{.}}";
{{- end}}
}

sub vcl_recv {
  if (req.method == "PURGE") {
    if (client.ip !~ purgers) {
      return (synth(405, "Not allowed"));
    }
{{- if .Xkey}}
    if (req.http.xkey-purge) {
      set req.http.n-gone = xkey.purge(req.http.xkey-purge);
      return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
    }
{{- end}}
    return (purge);
  }
}

sub vcl_backend_response {
{{- if .Xkey}}
  # xkey indexes the xkey header; origins that send only Surrogate-Key
  # (Fastly style) are indexed too.
  if (!beresp.http.xkey && beresp.http.Surrogate-Key) {
    set beresp.http.xkey = beresp.http.Surrogate-Key;
  }
{{- end}}
  if (!beresp.http.Cache-Control && !beresp.http.Expires) {
    set beresp.ttl = 0s;
    set beresp.uncacheable = true;
    return (deliver);
  }
}

sub vcl_deliver {
  if (obj.hits > 0) {
    set resp.http.X-Cache = "HIT";
  } else {
    set resp.http.X-Cache = "MISS";
  }
  set resp.http.X-Cache-Hits = obj.hits;
}
`))

// StartVarnish starts varnishd on a free loopback port in front of
// opts.Backend; it is stopped (by its pid file) when the test ends.
func StartVarnish(t testing.TB, opts VarnishOptions) *Varnish {
	t.Helper()
	host, port, ok := strings.Cut(opts.Backend, ":")
	if !ok || host == "" || port == "" {
		t.Fatalf("StartVarnish: backend %q is not host:port", opts.Backend)
	}
	if opts.Xkey {
		if m, _ := filepath.Glob("/usr/lib/*/varnish/vmods/libvmod_xkey.so"); len(m) == 0 {
			t.Fatalf("StartVarnish: the xkey vmod (libvmod_xkey.so) is not installed: apt-get install -y varnish-modules")
		}
	}
	purgers := opts.Purgers
	if len(purgers) == 0 {
		purgers = []string{"127.0.0.1"}
	}
	var vcl bytes.Buffer
	if err := edgeVCL.Execute(&vcl, map[string]any{"Host": host, "Port": port, "Purgers": purgers, "Xkey": opts.Xkey}); err != nil {
		t.Fatalf("render edge.vcl: %v", err)
	}
	return StartVarnishVCL(t, vcl.String())
}

// Counter reads one varnishstat counter, such as "MAIN.n_obj_purged" (how
// many cached objects PURGE removed) or "MAIN.cache_hit".
func (v *Varnish) Counter(t testing.TB, name string) uint64 {
	t.Helper()
	bin := Binary(t, "varnishstat", "apt-get install -y varnish", "/usr/bin")
	out, err := exec.Command(bin, "-n", filepath.Join(v.Dir, "varnish"), "-1", "-f", name).CombinedOutput()
	if err != nil {
		t.Fatalf("varnishstat %s: %v\n%s", name, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == name {
			n, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				t.Fatalf("varnishstat %s: value %q: %v", name, fields[1], err)
			}
			return n
		}
	}
	t.Fatalf("varnishstat has no counter %s:\n%s", name, out)
	return 0
}

// AllowAnonymousRead gives bucket a policy that lets anyone GET its
// objects, so an edge can use the S3 server as a public origin, the way a
// CDN reads a public bucket.
func AllowAnonymousRead(t testing.TB, s *S3, bucket string) {
	t.Helper()
	c := s3.New(s3.Options{Region: s.Region, BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")})
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::%s/*"}]}`, bucket)
	if _, err := c.PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(policy)}); err != nil {
		t.Fatalf("allow anonymous reads of bucket %s: %v", bucket, err)
	}
}

// stop ends the varnishd manager (which stops its cache child) and waits
// until it is gone, escalating to SIGKILL after 10 seconds.
func (v *Varnish) stop() {
	_ = syscall.Kill(v.pid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(v.pid, 0); errors.Is(err, syscall.ESRCH) || zombie(v.pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(v.pid, syscall.SIGKILL)
}

// String names the edge in failure messages.
func (v *Varnish) String() string { return fmt.Sprintf("varnishd at %s (dir %s)", v.URL, v.Dir) }

// zombie reports whether pid has exited but not been reaped (a daemon's
// parent is init, which in a container may never reap it).
func zombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
