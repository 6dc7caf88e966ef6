package testsvc

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
)

// Moto is a running moto_server, a real implementation of the AWS APIs
// (CloudFront among them) that records what it is sent.
type Moto struct {
	// URL is the server's base URL, http://127.0.0.1:PORT: the endpoint
	// override for an AWS SDK client.
	URL  string
	proc *Process
}

// MotoInvalidation is one CloudFront invalidation as moto recorded it.
type MotoInvalidation struct {
	ID              string
	Status          string
	CallerReference string
	Paths           []string // in the order they were sent
}

// StartMoto starts moto_server on a free loopback port; it is stopped when
// the test ends. moto comes with the Python package (pip install
// 'moto[server]').
func StartMoto(t testing.TB) *Moto {
	t.Helper()
	bin := Binary(t, "moto_server", "pip install 'moto[server]'")
	port := FreePort(t)
	p := Start(t, "moto_server", nil, bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	p.WaitTCP(t, Addr(port), 60*time.Second)
	return &Moto{URL: "http://" + Addr(port), proc: p}
}

// AWSConfig is an SDK configuration with static test credentials and region
// us-east-1; point a client at moto with the client option BaseEndpoint =
// m.URL.
func (m *Moto) AWSConfig() aws.Config {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "testsecret", ""),
	}
}

// CreateDistribution creates a CloudFront distribution in moto with an S3
// origin and returns its ID.
func (m *Moto) CreateDistribution(t testing.TB) string {
	t.Helper()
	return m.CreateDistributionFor(t, "site", "")
}

// CreateDistributionFor creates a CloudFront distribution in moto whose one
// origin is bucket's S3 REST endpoint with originPath ("" or "/www"), and
// returns its ID.
func (m *Moto) CreateDistributionFor(t testing.TB, bucket, originPath string) string {
	t.Helper()
	c := cloudfront.NewFromConfig(m.AWSConfig(), func(o *cloudfront.Options) { o.BaseEndpoint = aws.String(m.URL) })
	ref := strconv.FormatInt(time.Now().UnixNano(), 36)
	out, err := c.CreateDistribution(context.Background(), &cloudfront.CreateDistributionInput{
		DistributionConfig: &cftypes.DistributionConfig{
			CallerReference:   aws.String(ref),
			Comment:           aws.String("assetctl test"),
			Enabled:           aws.Bool(true),
			DefaultRootObject: aws.String("index.html"),
			Origins: &cftypes.Origins{Quantity: aws.Int32(1), Items: []cftypes.Origin{{
				Id:             aws.String("s3"),
				DomainName:     aws.String(bucket + ".s3.amazonaws.com"),
				OriginPath:     aws.String(originPath),
				S3OriginConfig: &cftypes.S3OriginConfig{OriginAccessIdentity: aws.String("")},
			}}},
			DefaultCacheBehavior: &cftypes.DefaultCacheBehavior{
				TargetOriginId:       aws.String("s3"),
				ViewerProtocolPolicy: cftypes.ViewerProtocolPolicyRedirectToHttps,
				// The managed CachingOptimized policy.
				CachePolicyId: aws.String("658327ea-f89d-4fab-a63d-7e88639e58f6"),
			},
		},
	})
	if err != nil {
		t.Fatalf("create a CloudFront distribution in moto: %v\n--- moto output ---\n%s", err, m.proc.Output())
	}
	return aws.ToString(out.Distribution.Id)
}

// Invalidations lists every invalidation moto recorded for a distribution,
// with its paths and caller reference. It reads moto's REST API directly
// (not through the SDK under test), oldest first as moto lists them.
func (m *Moto) Invalidations(t testing.TB, distributionID string) []MotoInvalidation {
	t.Helper()
	var list struct {
		Items []struct {
			ID string `xml:"Id"`
		} `xml:"Items>InvalidationSummary"`
	}
	m.getXML(t, "/2020-05-31/distribution/"+distributionID+"/invalidation?MaxItems=1000", &list)
	out := make([]MotoInvalidation, 0, len(list.Items))
	for _, it := range list.Items {
		out = append(out, m.Invalidation(t, distributionID, it.ID))
	}
	return out
}

// Invalidation reads one recorded invalidation.
func (m *Moto) Invalidation(t testing.TB, distributionID, id string) MotoInvalidation {
	t.Helper()
	var inv struct {
		ID              string   `xml:"Id"`
		Status          string   `xml:"Status"`
		CallerReference string   `xml:"InvalidationBatch>CallerReference"`
		Paths           []string `xml:"InvalidationBatch>Paths>Items>Path"`
	}
	m.getXML(t, "/2020-05-31/distribution/"+distributionID+"/invalidation/"+id, &inv)
	return MotoInvalidation{ID: inv.ID, Status: inv.Status, CallerReference: inv.CallerReference, Paths: inv.Paths}
}

func (m *Moto) getXML(t testing.TB, path string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, m.URL+path, nil)
	if err != nil {
		t.Fatalf("moto request: %v", err)
	}
	// moto routes a request to a service by the credential scope of its
	// Authorization header; it does not check the signature.
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/cloudfront/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s from moto: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read moto response to GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s from moto: %s\n%s", path, resp.Status, body)
	}
	if err := xml.Unmarshal(body, v); err != nil {
		t.Fatalf("decode moto response to GET %s: %v\n%s", path, err, body)
	}
}

// String names the server in failure messages.
func (m *Moto) String() string { return fmt.Sprintf("moto_server at %s", m.URL) }
