// Package hasher computes the content hashes assetctl names files by: a
// streaming SHA-256 (a 2 GB video is never held in memory), the short form
// that goes into file names (logo.8f4a2c11.png), and the Subresource
// Integrity value, all from one pass over the bytes.
package hasher

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
)

// ShortLen is how many hex digits of the digest go into a file name.
const ShortLen = 8

// Digest is a SHA-256 digest.
type Digest [sha256.Size]byte

// Hex is the digest as 64 lower-case hex digits.
func (d Digest) Hex() string { return hex.EncodeToString(d[:]) }

// Short is the first ShortLen hex digits, the part that goes into names.
func (d Digest) Short() string { return d.Hex()[:ShortLen] }

// Integrity is the Subresource Integrity value "sha256-<base64>".
func (d Digest) Integrity() string { return "sha256-" + base64.StdEncoding.EncodeToString(d[:]) }

// bufSize is the copy buffer per concurrent hash: large enough that
// syscalls are not the bottleneck, small enough that memory stays flat.
const bufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Bytes hashes b.
func Bytes(b []byte) Digest { return sha256.Sum256(b) }

// Sum streams r through SHA-256 and returns the digest and the byte count.
// It stops early with ctx's error when ctx is cancelled.
func Sum(ctx context.Context, r io.Reader) (Digest, int64, error) {
	return Copy(ctx, io.Discard, r)
}

// Copy streams src into dst and hashes the same bytes on the way, so a file
// is read once whether it is only hashed or also copied.
func Copy(ctx context.Context, dst io.Writer, src io.Reader) (Digest, int64, error) {
	h := sha256.New()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return Digest{}, n, err
		}
		k, rerr := src.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			if dst != io.Discard {
				if _, err := dst.Write(buf[:k]); err != nil {
					return Digest{}, n, err
				}
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return Digest{}, n, rerr
		}
	}
	var d Digest
	h.Sum(d[:0])
	return d, n, nil
}

// File hashes the file at name.
func File(ctx context.Context, name string) (Digest, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return Digest{}, 0, err
	}
	defer f.Close()
	d, n, err := Sum(ctx, f)
	if err != nil {
		return Digest{}, 0, fmt.Errorf("hash %s: %w", name, err)
	}
	return d, n, nil
}

// compoundExts are extensions made of two parts that must stay together
// at the end of a name: app.js.map becomes app.<hash>.js.map.
var compoundExts = []string{".js.map", ".css.map", ".mjs.map", ".tar.gz", ".tar.bz2", ".tar.xz"}

// SplitExt splits a base name into stem and extension, keeping compound
// extensions (".js.map") whole. A leading dot does not start an extension.
func SplitExt(base string) (stem, ext string) {
	lower := strings.ToLower(base)
	for _, c := range compoundExts {
		if strings.HasSuffix(lower, c) && len(base) > len(c) {
			return base[:len(base)-len(c)], base[len(base)-len(c):]
		}
	}
	i := strings.LastIndexByte(base, '.')
	if i <= 0 {
		return base, ""
	}
	return base[:i], base[i:]
}

// Name inserts the short digest before the extension of the last element
// of p (a slash-separated path): "img/logo.png" becomes
// "img/logo.8f4a2c11.png", "LICENSE" becomes "LICENSE.8f4a2c11".
func Name(p string, d Digest) string {
	dir, base := path.Split(p)
	stem, ext := SplitExt(base)
	return dir + stem + "." + d.Short() + ext
}
