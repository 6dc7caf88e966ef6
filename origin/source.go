package origin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/assetctl/assetctl/manifest"
)

// ManifestSource finds the current manifest. Fetch returns changed false
// (and no manifest) when the current version's ETag is still etag, so a
// poll costs a stat or one listing; otherwise it returns the manifest and
// its ETag. When the source holds a version that it cannot decode, Fetch
// returns an error and, when it can tell, that version's ETag too, so the
// caller can pass it back and hear "unchanged" instead of the same error
// on every poll.
type ManifestSource interface {
	Fetch(ctx context.Context, etag string) (m *manifest.Manifest, newETag string, changed bool, err error)
}

// DirSource reads manifest.json in a build output directory. A poll is a
// stat; the file is read and hashed only when its inode, size or
// modification time changed (or changed less than a second before it was
// last read), and parsed only when its hash did, so an unchanged build
// costs one system call. The ETag is the hash of the file.
func DirSource(dir string) ManifestSource {
	return &dirSource{path: filepath.Join(dir, manifest.FileName)}
}

type dirSource struct {
	path string

	mu     sync.Mutex
	st     os.FileInfo // as stat'ed before the bytes were last read
	readAt time.Time
	hash   string // of those bytes
}

// unchangedSince reports whether st proves the file is the one last read.
// File times are coarse (a few milliseconds on Linux), so a file modified
// twice within one tick keeps its time: as git does with its index, the
// stat is trusted only for a file that was already older than that when
// it was read. A file renamed over the old one is a new inode anyway.
func (d *dirSource) unchangedSince(st os.FileInfo) bool {
	return d.st != nil && os.SameFile(d.st, st) && st.Size() == d.st.Size() && st.ModTime().Equal(d.st.ModTime()) &&
		d.st.ModTime().Before(d.readAt.Add(-time.Second))
}

func (d *dirSource) Fetch(ctx context.Context, etag string) (*manifest.Manifest, string, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := os.Stat(d.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", false, fmt.Errorf("read manifest %s: %w (run assetctl build first)", d.path, manifest.ErrNotBuildOutput)
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("read manifest: %w", err)
	}
	if etag != "" && d.hash == etag && d.unchangedSince(st) {
		return nil, etag, false, nil
	}
	data, err := os.ReadFile(d.path)
	if err != nil {
		return nil, "", false, fmt.Errorf("read manifest: %w", err)
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:16])
	// The stat taken before the read may describe an older file than the
	// bytes (a build replaced it in between); remembering it can only
	// cause one extra read on the next poll, never a missed change.
	d.st, d.readAt, d.hash = st, time.Now(), hash
	if hash == etag {
		return nil, etag, false, nil
	}
	m, err := manifest.Parse(d.path, data)
	if err != nil {
		return nil, hash, false, err
	}
	return m, hash, true, nil
}

// BucketReader is what BucketSource needs of an object store: a listing
// with ETags and a conditional read. Keys are full object keys.
// internal/cli adapts the uploader's S3 client to it.
type BucketReader interface {
	// List calls fn with the key and ETag of every object whose key starts
	// with prefix.
	List(ctx context.Context, prefix string, fn func(key, etag string) error) error
	// Get reads the whole object key and returns its ETag, unless its ETag
	// equals ifNoneMatch (non-empty): then it returns an error matching
	// ErrNotModified and no body.
	Get(ctx context.Context, key, ifNoneMatch string) (data []byte, etag string, err error)
}

// ErrNotModified is what a BucketReader's Get returns when the object
// still has the ETag the caller holds.
var ErrNotModified = errors.New("not modified")

// ErrNoDeploy means a bucket prefix holds no deploy record yet.
var ErrNoDeploy = errors.New("no deploy record")

// BucketSource reads the live manifest of a deploy prefix in a bucket: the
// manifest inside the newest deploy record (manifest.CompareRecordKeys)
// that assetctl deploy writes under PREFIX/.assetctl/deploys/. A rollback
// writes a newer record holding the older build's manifest, so it is
// picked up the same way. A poll is one listing of the record folder; the
// record is read only when the newest key or its ETag changed, with a
// conditional GET. The ETag is "<record key> <object ETag>".
//
// Deploy writes the record after every asset of the build is uploaded
// and before any page, so the URLs of a manifest found this way already
// resolve on the CDN.
func BucketSource(b BucketReader, prefix string) ManifestSource {
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &bucketSource{b: b, prefix: prefix}
}

type bucketSource struct {
	b      BucketReader
	prefix string
}

func (s *bucketSource) Fetch(ctx context.Context, etag string) (*manifest.Manifest, string, bool, error) {
	var newest, newestETag string
	err := s.b.List(ctx, s.prefix+manifest.RecordDir, func(key, et string) error {
		if !manifest.IsRecordKey(strings.TrimPrefix(key, s.prefix)) {
			return nil
		}
		if newest == "" || manifest.CompareRecordKeys(key, newest) > 0 {
			newest, newestETag = key, et
		}
		return nil
	})
	if err != nil {
		return nil, "", false, fmt.Errorf("list deploy records: %w", err)
	}
	if newest == "" {
		return nil, "", false, fmt.Errorf("read live manifest: %w under %s%s: run assetctl deploy first", ErrNoDeploy, s.prefix, manifest.RecordDir)
	}
	heldKey, heldETag, _ := strings.Cut(etag, " ")
	if heldKey == newest && heldETag != "" && heldETag == newestETag {
		return nil, etag, false, nil
	}
	ifNoneMatch := ""
	if heldKey == newest {
		ifNoneMatch = heldETag
	}
	data, objETag, err := s.b.Get(ctx, newest, ifNoneMatch)
	if errors.Is(err, ErrNotModified) {
		return nil, etag, false, nil
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("read deploy record: %w", err)
	}
	if objETag == "" {
		objETag = newestETag
	}
	newTag := newest + " " + objETag
	rec, err := manifest.DecodeRecord(newest, data)
	if err != nil {
		return nil, newTag, false, err
	}
	m, err := rec.LoadManifest()
	if err != nil {
		return nil, newTag, false, err
	}
	return m, newTag, true, nil
}
