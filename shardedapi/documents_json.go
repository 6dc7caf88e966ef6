package shardedapi

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// validCollectionName reports whether name matches [a-z][a-z0-9_-]{0,62}.
func validCollectionName(name string) bool {
	if len(name) == 0 || len(name) > 63 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkDocumentID checks that id is 1..MaxDocumentIDLen bytes of
// [A-Za-z0-9._~-] (URL-safe unreserved characters, so it needs no escaping
// in a path, a cache key or a cursor).
func checkDocumentID(id string) error {
	if len(id) == 0 || len(id) > MaxDocumentIDLen {
		return fmt.Errorf("document id of %d bytes: %w: want 1..%d bytes of A-Z a-z 0-9 . _ ~ -", len(id), ErrInvalidKey, MaxDocumentIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '~' || c == '-') {
			return fmt.Errorf("document id %q: %w: byte %d (%q) is not one of A-Z a-z 0-9 . _ ~ -", id, ErrInvalidKey, i, c)
		}
	}
	return nil
}

// checkJSONObject checks that b is at most max bytes of one JSON object.
// what names b in messages ("body", "patch").
func checkJSONObject(what string, b []byte, max int) error {
	if len(b) > max {
		return fmt.Errorf("%s of %d bytes: %w: larger than the %d-byte limit", what, len(b), ErrDocumentTooLarge, max)
	}
	if !json.Valid(b) {
		// Decode only to find the offset of the error: the valid path
		// stays a single scan.
		var v json.RawMessage
		err := json.Unmarshal(b, &v)
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return fmt.Errorf("%s: %w: malformed JSON at offset %d: %v", what, ErrInvalidValue, syn.Offset, err)
		}
		return fmt.Errorf("%s: %w: malformed JSON: %v", what, ErrInvalidValue, err)
	}
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("%s: %w: want a JSON object ({...})", what, ErrInvalidValue)
	}
	return nil
}

// decodeJSON decodes b keeping numbers exact (json.Number), so a merge
// patch does not round large integers through float64.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

// encodeJSON is json.Marshal without HTML escaping (the stored document
// keeps "<" as "<").
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// mergePatch applies the JSON merge patch patch to target (RFC 7386):
// null deletes a member, objects merge recursively, any other value
// replaces. target nil means an absent document. Both must be valid JSON.
func mergePatch(target, patch []byte) ([]byte, error) {
	p, err := decodeJSON(patch)
	if err != nil {
		return nil, fmt.Errorf("decode patch: %w", err)
	}
	var t any
	if target != nil {
		if t, err = decodeJSON(target); err != nil {
			return nil, fmt.Errorf("decode document: %w", err)
		}
	}
	return encodeJSON(applyMergePatch(t, p))
}

func applyMergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = make(map[string]any, len(pm))
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = applyMergePatch(tm[k], v)
	}
	return tm
}

// maxUniqueValueLen bounds a unique field's value (the catalog indexes it).
const maxUniqueValueLen = 1024

// uniqueValues extracts the claimed values of fields from body, a JSON
// object: lower-cased strings. An absent, null or empty field claims
// nothing; any other non-string value is ErrInvalidValue.
func uniqueValues(body []byte, fields []string) (map[string]string, error) {
	if len(fields) == 0 || body == nil {
		return nil, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("body: %w: %v", ErrInvalidValue, err)
	}
	out := make(map[string]string, len(fields))
	for _, f := range fields {
		raw, ok := top[f]
		if !ok || string(raw) == "null" {
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("unique field %q: %w: want a string or null", f, ErrInvalidValue)
		}
		v = strings.ToLower(v)
		if v == "" {
			continue
		}
		if len(v) > maxUniqueValueLen {
			return nil, fmt.Errorf("unique field %q of %d bytes: %w: longer than %d bytes", f, len(v), ErrInvalidValue, maxUniqueValueLen)
		}
		out[f] = v
	}
	return out, nil
}

// A cached document is a fixed header and the body exactly as stored, so a
// cache hit costs no JSON parsing:
//
//	offset size field
//	0      1    magic 'D'
//	1      1    format version (docCacheFormat)
//	2      8    rev
//	10     8    created_at, Unix microseconds
//	18     8    updated_at, Unix microseconds
//	26     n    body
//
// (The Cache wraps this in its own entry header; a change here bumps
// docCacheFormat, and DocumentCacheKey's "v1" if old entries must not even
// be tried.)
const (
	docCacheMagic      = 'D'
	docCacheFormat     = 1
	docCacheHeaderSize = 26
)

func encodeCachedDocument(d Document) []byte {
	b := make([]byte, docCacheHeaderSize+len(d.Body))
	b[0] = docCacheMagic
	b[1] = docCacheFormat
	binary.BigEndian.PutUint64(b[2:], uint64(d.Rev))
	binary.BigEndian.PutUint64(b[10:], uint64(d.CreatedAt.UnixMicro()))
	binary.BigEndian.PutUint64(b[18:], uint64(d.UpdatedAt.UnixMicro()))
	copy(b[docCacheHeaderSize:], d.Body)
	return b
}

// decodeCachedDocument parses b; Body aliases b.
func decodeCachedDocument(collection, id string, b []byte) (Document, error) {
	if len(b) < docCacheHeaderSize+2 || b[0] != docCacheMagic || b[1] != docCacheFormat {
		return Document{}, fmt.Errorf("cached document %s/%s: %w: %d bytes without a valid header", collection, id, ErrMalformedEntry, len(b))
	}
	return Document{
		Collection: collection,
		ID:         id,
		Rev:        int64(binary.BigEndian.Uint64(b[2:])),
		CreatedAt:  time.UnixMicro(int64(binary.BigEndian.Uint64(b[10:]))).UTC(),
		UpdatedAt:  time.UnixMicro(int64(binary.BigEndian.Uint64(b[18:]))).UTC(),
		Body:       b[docCacheHeaderSize:],
	}, nil
}

// A List cursor is base64url (unpadded) of the last document's created_at
// in Unix microseconds (8 bytes, big endian) followed by its ID.
type listCursor struct {
	created int64
	id      string
}

func encodeCursor(d Document) string {
	b := make([]byte, 8+len(d.ID))
	binary.BigEndian.PutUint64(b, uint64(d.CreatedAt.UnixMicro()))
	copy(b[8:], d.ID)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (listCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 9 {
		return listCursor{}, fmt.Errorf("cursor %.40q: %w: not a cursor this store returned (pass Next unchanged)", s, ErrInvalidValue)
	}
	c := listCursor{created: int64(binary.BigEndian.Uint64(b)), id: string(b[8:])}
	if checkDocumentID(c.id) != nil {
		return listCursor{}, fmt.Errorf("cursor %.40q: %w: not a cursor this store returned (pass Next unchanged)", s, ErrInvalidValue)
	}
	return c, nil
}
