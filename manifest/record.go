package manifest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// The deploy record is the second half of the contract: assetctl deploy
// writes one into the bucket for every deploy and rollback, and whatever
// reads the live build from the bucket (assetctl serve, a later deploy)
// decodes it here, so the format lives in one place.

// RecordDir is the reserved folder, under a deploy prefix, that holds
// deploy records. No output path may start with it.
const RecordDir = ".assetctl/deploys/"

// RecordVersion is the record format this package reads and writes.
const RecordVersion = 1

// RecordTimeFormat is the time in a record's key. It sorts lexically in
// time order, which is what makes "the newest record" a string comparison.
const RecordTimeFormat = "20060102T150405.000Z"

// Record is what one deploy published: its manifest, the headers and
// expected ETag of every object, and the bytes of its small mutable files
// (so a rollback can republish pages that have since been overwritten).
// It is stored gzipped at PREFIX/.assetctl/deploys/<time>-<buildID>.json.gz
// (see RecordKey).
//
// A rollback writes a new record (Rollback true) holding the manifest of
// the build it went back to, so the newest record (CompareRecordKeys) always
// names the live build, whichever way it got there.
type Record struct {
	Version  int       `json:"version"`
	BuildID  string    `json:"buildID"`
	Time     time.Time `json:"time"`
	Rollback bool      `json:"rollback,omitempty"`
	// Manifest is decoded on demand from RawManifest (LoadManifest, Load):
	// planning a redeploy never needs it, and it is most of a record's bytes.
	Manifest    *Manifest               `json:"-"`
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
	// Bodies holds small mutable files by hash, decoded on demand (Load)
	// from RawBodies.
	Bodies    map[string][]byte `json:"-"`
	RawBodies json.RawMessage   `json:"bodies,omitempty"`

	// Key is where the record is stored (prefix included); set by
	// DecodeRecord, or by the writer when it plans one. Not encoded.
	Key string `json:"-"`
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

// Headers are the HTTP headers and metadata a deploy sets on one object,
// as its record keeps them.
type Headers struct {
	ContentType  string `json:"contentType"`
	CacheControl string `json:"cacheControl"`
	// SHA256 is the hex content hash, stored as object metadata (ETags are
	// not content hashes for multipart uploads).
	SHA256 string `json:"sha256"`
}

// RecordKey is the key of the record of a deploy of buildID made at t,
// under prefix ("" or "site/", with its trailing slash).
func RecordKey(prefix string, t time.Time, buildID string) string {
	return prefix + RecordDir + t.UTC().Format(RecordTimeFormat) + "-" + buildID + ".json.gz"
}

// IsRecordKey reports whether rel (a key relative to the deploy prefix)
// is a deploy record.
func IsRecordKey(rel string) bool {
	return strings.HasPrefix(rel, RecordDir) && strings.HasSuffix(rel, ".json.gz") && !strings.Contains(rel[len(RecordDir):], "/")
}

// CompareRecordKeys orders two record keys of one prefix from oldest to
// newest (-1, 0, +1 like strings.Compare). The newest record is the live
// deploy: deploys and rollbacks alike write a new one, named by the
// deploying machine's UTC time to the millisecond; two records of the same
// millisecond are ordered by build ID, so every reader picks the same one.
func CompareRecordKeys(a, b string) int {
	return strings.Compare(path.Base(a), path.Base(b))
}

// Encode returns the record gzipped, encoding Manifest and Bodies into
// their raw fields first.
func (r *Record) Encode() ([]byte, error) {
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

// DecodeRecord decodes a record's stored bytes, leaving the manifest and
// the bodies raw (see LoadManifest and Load); key is used in errors and
// kept in Record.Key.
func DecodeRecord(key string, data []byte) (*Record, error) {
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
	if r.Version != RecordVersion || len(r.RawManifest) == 0 {
		return nil, fmt.Errorf("read deploy record %s: unsupported version %d or no manifest", key, r.Version)
	}
	r.Key = key
	return &r, nil
}

// LoadManifest parses and validates the record's manifest (once) and
// returns it.
func (r *Record) LoadManifest() (*Manifest, error) {
	if r.Manifest == nil {
		m, err := Parse(r.Key, r.RawManifest)
		if err != nil {
			return nil, fmt.Errorf("read deploy record %s: %w", r.Key, err)
		}
		r.Manifest = m
	}
	return r.Manifest, nil
}

// Load decodes the parts of a record that only a rollback needs: the
// manifest and the page bodies.
func (r *Record) Load() error {
	if _, err := r.LoadManifest(); err != nil {
		return err
	}
	if r.Bodies == nil && len(r.RawBodies) > 0 {
		if err := json.Unmarshal(r.RawBodies, &r.Bodies); err != nil {
			return fmt.Errorf("read deploy record %s: bodies: %w", r.Key, err)
		}
	}
	return nil
}
