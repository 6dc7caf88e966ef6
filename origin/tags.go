package origin

import (
	"crypto/sha256"
	"encoding/base32"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Cache tags name what a cached response was built from, so one purge at
// the edge drops every cached response that used a document, and nothing
// else.
//
// The scheme (stable: a purge script or another service can compute the
// same tags):
//
//	DocumentTag(c, id) = "d" + base32lower(sha256("doc\x00" + c + "\x00" + id)[:10])
//	CollectionTag(c)   = "c" + base32lower(sha256("coll\x00" + c)[:10])
//
// base32lower is RFC 4648 base32 in lower case without padding, so a tag
// is 17 bytes of [a-z2-7]: safe in any header, and short enough that
// about 55 of them fit in MaxCacheTagBytes. Hashing keeps long or odd IDs
// within the limits edges put on a key (Fastly: 1 KiB a key, 16 KiB a
// header) and does not reveal IDs in headers; 80 bits make a collision (an
// extra purge, never a missed one) negligible.
const tagHashBytes = 10

var tagEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// MaxCacheTagBytes caps the Surrogate-Key and xkey headers that
// SetCacheTags writes. Proxies and CDNs reject or truncate long headers
// (the failure rails/rails#48402 hit with Link), so a response that would
// need more tags must use a broader one, such as CollectionTag.
const MaxCacheTagBytes = 1000

// DocumentTag is the cache tag of one document: every response built from
// it carries this tag, and a write to it purges the tag at the edge.
func DocumentTag(collection, id string) string {
	return hashTag('d', "doc\x00", collection, "\x00", id)
}

// CollectionTag is the cache tag of a collection's list pages (and of any
// page showing "the newest N"): every write to the collection purges it.
func CollectionTag(collection string) string {
	return hashTag('c', "coll\x00", collection)
}

func hashTag(kind byte, parts ...string) string {
	var b [tagLen]byte
	return string(appendHashTag(b[:0], kind, parts...))
}

// tagLen is the length of a hashed tag: its kind byte and the base32 of
// tagHashBytes (10 bytes: 16 characters).
const tagLen = 1 + 16

// appendDocumentTag appends DocumentTag(collection, id) to dst, so the
// GET handler can build its header values in one string.
func appendDocumentTag(dst []byte, collection, id string) []byte {
	return appendHashTag(dst, 'd', "doc\x00", collection, "\x00", id)
}

func appendHashTag(dst []byte, kind byte, parts ...string) []byte {
	// Hash from a stack buffer: no allocation for the input on the hot
	// path (every shared GET computes its document's tag).
	var buf [256]byte
	in := buf[:0]
	for _, p := range parts {
		in = append(in, p...)
	}
	sum := sha256.Sum256(in)
	dst = append(dst, kind)
	n := len(dst)
	dst = append(dst, make([]byte, tagLen-1)...)
	tagEncoding.Encode(dst[n:], sum[:tagHashBytes])
	return dst
}

// SetCacheTags sets the response's cache tags in both headers edges read:
// Surrogate-Key (Fastly, and Varnish setups that copy it) and xkey
// (Varnish's xkey vmod), space-separated. Tags that are empty or not
// header-safe tokens are dropped, duplicates are written once, and tags
// that would push the header past MaxCacheTagBytes are left out (a page
// with that many sources should carry a broader tag). It replaces tags set
// before.
func SetCacheTags(h http.Header, tags ...string) {
	if len(tags) == 1 && tags[0] != "" && len(tags[0]) <= MaxCacheTagBytes && tagSafe(tags[0]) {
		v := []string{tags[0]} // the common case: one document's page
		h["Surrogate-Key"] = v
		h["Xkey"] = v
		return
	}
	var b strings.Builder
	seen := make(map[string]bool, len(tags))
	for _, t := range tags {
		if t == "" || seen[t] || !tagSafe(t) {
			continue
		}
		n := len(t)
		if b.Len() > 0 {
			n++
		}
		if b.Len()+n > MaxCacheTagBytes {
			continue
		}
		seen[t] = true
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(t)
	}
	if b.Len() == 0 {
		h.Del("Surrogate-Key")
		h.Del("xkey")
		return
	}
	v := []string{b.String()}
	h["Surrogate-Key"] = v
	h["Xkey"] = v
}

// tagSafe reports whether t is a token every edge accepts as one key:
// visible ASCII without separators the headers use.
func tagSafe(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c <= ' ' || c >= 0x7f || c == ',' || c == '"' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}

// CachePolicy is the Cache-Control of a response. The zero value is
// per-user: "private, no-store" (nothing shared caches it). Set SMaxAge to
// make responses shared: "public, max-age=0, s-maxage=N" plus
// stale-while-revalidate and stale-if-error when set, so browsers always
// revalidate (cheaply, with the ETag) while the CDN, the outermost cache
// tier, keeps the response until it expires or a write purges its tag.
type CachePolicy struct {
	// SMaxAge is how long shared caches (the CDN) keep a response. Default
	// 0: the response is private.
	SMaxAge time.Duration
	// StaleWhileRevalidate lets the CDN answer with an expired copy while
	// it fetches a fresh one in the background. Default 0: off.
	StaleWhileRevalidate time.Duration
	// StaleIfError lets the CDN answer with an expired copy when the origin
	// fails (5xx or unreachable). Default 0: off.
	StaleIfError time.Duration
}

// Shared reports whether responses under p may be kept by shared caches.
func (p CachePolicy) Shared() bool { return p.SMaxAge > 0 }

// String is the Cache-Control header value.
func (p CachePolicy) String() string {
	if !p.Shared() {
		return "private, no-store"
	}
	b := make([]byte, 0, 96)
	b = append(b, "public, max-age=0, s-maxage="...)
	b = strconv.AppendInt(b, seconds(p.SMaxAge), 10)
	if p.StaleWhileRevalidate > 0 {
		b = append(b, ", stale-while-revalidate="...)
		b = strconv.AppendInt(b, seconds(p.StaleWhileRevalidate), 10)
	}
	if p.StaleIfError > 0 {
		b = append(b, ", stale-if-error="...)
		b = strconv.AppendInt(b, seconds(p.StaleIfError), 10)
	}
	return string(b)
}

// seconds rounds d up to whole seconds, so a positive duration never
// becomes 0 (which would mean "do not keep").
func seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }
