package ghactions_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/assetctl/assetctl/internal/testsvc"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The self-test workflow run by nektos/act in host mode (no Docker):
// actions/checkout, then `uses: ./` with every input against versitygw. On
// "opened" the PR's preview is deployed under pr-5/ and the outputs come
// back through act; on "closed" the same workflow removes it. (act sets
// INPUT_* for composite steps where GitHub does not; the runner harness in
// harness_test.go runs without them.)
func TestActRunsSelftest(t *testing.T) {
	act := testsvc.Binary(t, "act", "go install github.com/nektos/act@v0.2.89", testsvc.GoBin())
	s3srv := testsvc.StartS3(t)
	s3srv.CreateBucket(t, "site-bucket")
	root, _ := filepath.Abs(repoRoot)
	client := s3.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(s3srv.AccessKey, s3srv.SecretKey, "")},
		func(o *s3.Options) { o.BaseEndpoint = aws.String(s3srv.Endpoint); o.UsePathStyle = true })
	count := func(prefix string) int {
		t.Helper()
		out, err := client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("site-bucket"), Prefix: aws.String(prefix)})
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		return len(out.Contents)
	}
	runAct := func(action string) string {
		t.Helper()
		ev := filepath.Join(t.TempDir(), "event.json")
		// "act": true is how a workflow can tell act from GitHub.
		body := `{"act":true,"action":"` + action + `","number":5,"pull_request":{"number":5,` +
			`"head":{"repo":{"full_name":"o/site"}},"base":{"repo":{"full_name":"o/site"}}}}`
		if err := os.WriteFile(ev, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(act, "pull_request", "-W", "internal/ghactions/testdata/selftest.yml",
			"-P", "ubuntu-latest=-self-hosted", "--action-offline-mode", "-e", ev,
			"--env", "S3_ENDPOINT="+s3srv.Endpoint, "--env", "AWS_ACCESS_KEY_ID="+s3srv.AccessKey,
			"--env", "AWS_SECRET_ACCESS_KEY="+s3srv.SecretKey, "--env", "AWS_REGION=us-east-1")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("act (%s): %v\n%s", action, err, out)
		}
		return string(out)
	}

	log := runAct("opened")
	for _, want := range []string{"url=https://cdn.example.com/pr-5/", "Job succeeded"} {
		if !strings.Contains(log, want) {
			t.Errorf("act log (opened) lacks %q:\n%s", want, log)
		}
	}
	n := count("pr-5/")
	if n == 0 || count("www/") != 0 {
		t.Fatalf("after opened: pr-5/ holds %d objects, www/ %d; want the preview only", n, count("www/"))
	}
	log = runAct("closed")
	if !strings.Contains(log, "Job succeeded") || !strings.Contains(log, "deleted=") {
		t.Errorf("act log (closed):\n%s", log)
	}
	if left := count("pr-5/"); left != 0 {
		t.Errorf("after closed: pr-5/ still holds %d objects", left)
	}
}
