package uploader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/assetctl/assetctl/manifest"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// The deploy record's format (type, key layout, encoding, which record is
// the newest) belongs to the manifest package, the contract that the origin
// server reads too; these names keep the uploader's code reading as before.

// RecordDir is the reserved folder, under the deploy prefix, that holds
// deploy records. No output path may start with it.
const RecordDir = manifest.RecordDir

// Record is what one deploy published (see manifest.Record).
type Record = manifest.Record

// RecordObject is one output as a record saw it published.
type RecordObject = manifest.RecordObject

const (
	recordVersion    = manifest.RecordVersion
	recordTimeFormat = manifest.RecordTimeFormat
)

// maxRecordBody bounds the mutable files a record carries for rollback.
const maxRecordBody = 1 << 20

func recordKey(prefix string, t time.Time, buildID string) string {
	return manifest.RecordKey(prefix, t, buildID)
}

func isRecordKey(rel string) bool { return manifest.IsRecordKey(rel) }

func decodeRecord(key string, data []byte) (*Record, error) { return manifest.DecodeRecord(key, data) }

// ErrNotModified is returned by GetIfNoneMatch when the object still has
// the ETag the caller holds.
var ErrNotModified = errors.New("object not modified")

// GetIfNoneMatch reads a whole (small) object and its ETag, unless its
// ETag is still etag (then ErrNotModified, and no body is sent): a server
// polling for a new deploy record re-reads it only when it changed. An
// empty etag reads unconditionally. A missing key is ErrNotFound.
func (s *S3Store) GetIfNoneMatch(ctx context.Context, key, etag string) ([]byte, string, error) {
	in := &s3.GetObjectInput{Bucket: &s.opts.Bucket, Key: &key}
	if etag != "" {
		in.IfNoneMatch = &etag
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		var re *awshttp.ResponseError
		var apiErr smithy.APIError
		switch {
		case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotModified,
			errors.As(err, &apiErr) && apiErr.ErrorCode() == "NotModified":
			return nil, etag, fmt.Errorf("get %s: %w", key, ErrNotModified)
		case isNotFound(err):
			return nil, "", fmt.Errorf("get %s: %w", key, ErrNotFound)
		}
		return nil, "", fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", fmt.Errorf("get %s: %w", key, err)
	}
	var tag string
	if out.ETag != nil {
		tag = *out.ETag
	}
	return b, tag, nil
}
