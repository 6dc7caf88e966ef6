package uploader

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/assetctl/assetctl/manifest"
)

// RecordDir is the reserved folder, under the deploy prefix, that holds
// deploy records. No output path may start with it.
const RecordDir = ".assetctl/deploys/"

const recordVersion = 1

// recordTimeFormat sorts lexically in time order.
const recordTimeFormat = "20060102T150405.000Z"

// Record is what one deploy published: its manifest, the headers and
// expected ETag of every object, and the bytes of its small mutable files
// (so a rollback can republish pages that have since been overwritten).
// It is stored gzipped at PREFIX/.assetctl/deploys/<time>-<buildID>.json.gz.
type Record struct {
	Version     int                     `json:"version"`
	BuildID     string                  `json:"buildID"`
	Time        time.Time               `json:"time"`
	Rollback    bool                    `json:"rollback,omitempty"`
	Manifest    *manifest.Manifest      `json:"-"` // decoded on demand, see load
	RawManifest json.RawMessage         `json:"manifest"`
	Objects     map[string]RecordObject `json:"objects"` // by output path
	// Invalidate are the CDN paths this deploy set out to invalidate; a
	// rerun that completes an interrupted deploy invalidates them again.
	Invalidate []string `json:"invalidate,omitempty"`
	// CallerRef is the CloudFront caller reference of that invalidation.
	CallerRef string `json:"callerReference,omitempty"`
	// Sentinel is the page this deploy uploaded last, after every other
	// page and removal: when the store holds it with its expected ETag, the
	// deploy completed, so a redeploy of the same build can trust this
	// record without listing the prefix.
	Sentinel string `json:"sentinel,omitempty"`
	// Verified marks a record whose deploy had no page step: every claim in
	// it was checked against the store before it was written.
	Verified bool `json:"verified,omitempty"`
	// Bodies holds mutable files up to maxRecordBody bytes, by hash.
	Bodies    map[string][]byte `json:"-"` // decoded on demand, see load
	RawBodies json.RawMessage   `json:"bodies,omitempty"`

	key string // where it is stored; set when read or planned
}

// RecordObject is one output as a record saw it published.
type RecordObject struct {
	Headers
	Size      int64 `json:"size"`
	Immutable bool  `json:"immutable,omitempty"`
	// ETag is the ETag the store reports when the object holds exactly
	// these bytes and headers, or "" when that is not known. A listing
	// whose ETag matches it proves the record's hash and headers without a
	// HEAD.
	ETag string `json:"etag,omitempty"`
}

// maxRecordBody bounds the mutable files a record carries for rollback.
const maxRecordBody = 1 << 20

func recordKey(prefix string, t time.Time, buildID string) string {
	return prefix + RecordDir + t.UTC().Format(recordTimeFormat) + "-" + buildID + ".json.gz"
}

// isRecordKey reports whether rel (a key relative to the prefix) is a record.
func isRecordKey(rel string) bool {
	return strings.HasPrefix(rel, RecordDir) && strings.HasSuffix(rel, ".json.gz") && !strings.Contains(rel[len(RecordDir):], "/")
}

func (r *Record) encode() ([]byte, error) {
	var err error
	if r.RawManifest, err = json.Marshal(r.Manifest); err != nil {
		return nil, fmt.Errorf("encode deploy record: %w", err)
	}
	if r.RawBodies, err = json.Marshal(r.Bodies); err != nil {
		return nil, fmt.Errorf("encode deploy record: %w", err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(r); err != nil {
		return nil, fmt.Errorf("encode deploy record: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("encode deploy record: %w", err)
	}
	return buf.Bytes(), nil
}

func decodeRecord(key string, data []byte) (*Record, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("read deploy record %s: %w", key, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("read deploy record %s: %w", key, err)
	}
	var r Record
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("read deploy record %s: %w", key, err)
	}
	if r.Version != recordVersion || len(r.RawManifest) == 0 {
		return nil, fmt.Errorf("read deploy record %s: unsupported version %d or no manifest", key, r.Version)
	}
	r.key = key
	return &r, nil
}

// load decodes the parts of a record that planning a redeploy never needs
// (the manifest and the page bodies, most of its bytes): only a rollback does.
func (r *Record) load() error {
	if r.Manifest == nil {
		m, err := manifest.Parse(r.key, r.RawManifest)
		if err != nil {
			return fmt.Errorf("read deploy record %s: %w", r.key, err)
		}
		r.Manifest = m
	}
	if r.Bodies == nil && len(r.RawBodies) > 0 {
		if err := json.Unmarshal(r.RawBodies, &r.Bodies); err != nil {
			return fmt.Errorf("read deploy record %s: bodies: %w", r.key, err)
		}
	}
	return nil
}
