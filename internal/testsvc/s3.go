package testsvc

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// S3 is a private versitygw server (a real S3 gateway) on a loopback port,
// storing buckets as folders of a temp dir.
type S3 struct {
	Endpoint  string // http://127.0.0.1:PORT
	Dir       string // each sub-folder is a bucket
	AccessKey string
	SecretKey string
	Region    string
	proc      *Process
	syncN     int
}

// StartS3 starts versitygw with its posix backend; it is killed when the test ends.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	bin := Binary(t, "versitygw", "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0", GoBin())
	s := &S3{Dir: t.TempDir(), AccessKey: "test", SecretKey: "testsecret", Region: "us-east-1"}
	port := FreePort(t)
	s.Endpoint = "http://" + Addr(port)
	s.proc = Start(t, "versitygw", []string{"ROOT_ACCESS_KEY=" + s.AccessKey, "ROOT_SECRET_KEY=" + s.SecretKey},
		bin, "--port", Addr(port), "--keep-alive", "posix", s.Dir)
	s.proc.WaitTCP(t, Addr(port), 30*time.Second)
	return s
}

// CreateBucket makes an empty bucket.
func (s *S3) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(s.Dir, name), 0o755); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// Env is the environment an AWS client (awscli, boto3, the SDK's default
// chain) needs to reach this server with its credentials.
func (s *S3) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_DEFAULT_REGION=" + s.Region, "AWS_REGION=" + s.Region, "AWS_ENDPOINT_URL=" + s.Endpoint,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
}

// LogMark is a position in the server's request log.
type LogMark int

// Mark returns the end of the request log after every request answered so
// far (see Sync).
func (s *S3) Mark(t testing.TB) LogMark {
	t.Helper()
	s.Sync(t)
	return LogMark(len(s.proc.Output()))
}

var logLine = regexp.MustCompile(`\| (GET|PUT|POST|HEAD|DELETE) \| (\S+) `)

// Sync waits until every request the server answered so far is in its
// log: it sends a marker request and waits for its log line.
func (s *S3) Sync(t testing.TB) {
	t.Helper()
	s.syncN++
	marker := fmt.Sprintf("/assetctl-log-sync-%d", s.syncN)
	resp, err := http.Get(s.Endpoint + marker)
	if err != nil {
		t.Fatalf("sync versitygw log: %v", err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.proc.Output(), marker+" ") {
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not log request %s within 10s", marker)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Requests lists "METHOD /bucket/key" for every request logged since mark
// (after Sync) whose method is one of methods (all when none are given). CopyObject
// shows as PUT, multipart parts as PUT too.
func (s *S3) Requests(t testing.TB, mark LogMark, methods ...string) []string {
	t.Helper()
	s.Sync(t)
	out := s.proc.Output()[mark:]
	var reqs []string
	for _, line := range strings.Split(out, "\n") {
		m := logLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if len(methods) > 0 && !contains(methods, m[1]) {
			continue
		}
		reqs = append(reqs, m[1]+" "+m[2])
	}
	return reqs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// CPU is the CPU time (user plus system) the server has used so far, read
// from /proc/PID/stat: benchmarks use it to tell the server's share of a
// run from the client's.
func (s *S3) CPU(t testing.TB) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.proc.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read versitygw CPU time: %v", err)
	}
	// Fields after the command name (which may hold spaces) start at ")".
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	var utime, stime int64
	if len(f) < 13 {
		t.Fatalf("read versitygw CPU time: /proc stat has %d fields, want at least 13", len(f))
	}
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}
