package uploader_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"

	"github.com/assetctl/assetctl/uploader"
)

// Uploads to a loopback endpoint are signed with UNSIGNED-PAYLOAD (neither
// side hashes the body for SigV4) and reuse the pool's connections; the
// bytes still arrive intact, as boto3 reads them back.
func TestUploadTransport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	st := e.store(e.s3.Endpoint)
	var mu sync.Mutex
	var reused, dialed int
	payloadHashes := map[string]int{}
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			mu.Lock()
			defer mu.Unlock()
			if i.Reused {
				reused++
			} else {
				dialed++
			}
		},
		WroteHeaderField: func(key string, value []string) {
			if strings.EqualFold(key, "X-Amz-Content-Sha256") {
				mu.Lock()
				defer mu.Unlock()
				payloadHashes[strings.Join(value, ",")]++
			}
		},
	})
	const n = 20
	for i := range n {
		body := strings.Repeat("x", 1000+i)
		if err := st.Put(ctx, fmt.Sprintf("k%02d.txt", i), strings.NewReader(body), int64(len(body)),
			uploader.Headers{ContentType: "text/plain", SHA256: fmt.Sprint(i)}); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	if got := payloadHashes["UNSIGNED-PAYLOAD"]; got != n || len(payloadHashes) != 1 {
		t.Errorf("x-amz-content-sha256 values: got %v, want UNSIGNED-PAYLOAD on all %d PUTs", payloadHashes, n)
	}
	if dialed > 1 || reused < n-1 {
		t.Errorf("connections: got %d dialed and %d reused for %d sequential PUTs, want 1 and %d", dialed, reused, n, n-1)
	}
	objs := e.inspect("k")
	for i := range n {
		k := fmt.Sprintf("k%02d.txt", i)
		sum := sha256.Sum256([]byte(strings.Repeat("x", 1000+i)))
		if got, want := objs[k].SHA256, hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: got body sha256 %s, want %s", k, got, want)
		}
	}
}
