package shardedapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The generic document store that the origin server (origin/, assetctl
// serve) builds on.

// ErrPreconditionFailed means a conditional write's expectation did not hold:
// the document's revision is not the one the caller last saw (a lost update
// prevented), or it exists when the caller required that it did not.
var ErrPreconditionFailed = errors.New("shardedapi: precondition failed")

// Limits of DocumentStore.
const (
	// DefaultMaxBodyBytes is DocumentStoreOptions.MaxBodyBytes's default.
	DefaultMaxBodyBytes = 1 << 20
	// MaxDocumentIDLen is the longest document ID, in bytes.
	MaxDocumentIDLen = 128
	// MaxListLimit is the largest page List returns.
	MaxListLimit = 1000
)

// UniqueFieldError is a write refused because a unique field's value
// belongs to another document. It unwraps to an error for which
// errors.Is(err, ErrTaken) holds; errors.As gives the field's name.
type UniqueFieldError struct {
	Collection string
	Field      string // the top-level field, as configured
	Err        error  // wraps ErrTaken
}

func (e *UniqueFieldError) Error() string {
	return fmt.Sprintf("%s field %q: %v", e.Collection, e.Field, e.Err)
}

func (e *UniqueFieldError) Unwrap() error { return e.Err }

// CollectionConfig declares one collection of JSON documents.
type CollectionConfig struct {
	// Name is the collection's name in URLs and keys: [a-z][a-z0-9_-]{0,62}.
	Name string
	// Unique lists top-level string fields whose values must be unique
	// across every shard (e.g. "email" for users), enforced through the
	// catalog's uniqueness claims. Compared case-insensitively. Default none.
	Unique []string
}

// DocumentStoreOptions configure a DocumentStore.
type DocumentStoreOptions struct {
	// Collections are the collections the store accepts; any other name is
	// ErrUnknownCollection. At least one is required.
	Collections []CollectionConfig
	// Cache is the cache-aside layer reads go through and writes
	// invalidate. Default nil: every read goes to the shard.
	Cache EntryCache
	// MaxBodyBytes caps a document's JSON size (a Put body, a Patch and
	// the patched result). Default 1 MiB (DefaultMaxBodyBytes).
	MaxBodyBytes int
	// Logger receives the store's logs. Default: the Cluster's logger.
	Logger *slog.Logger
}

// ErrDocumentTooLarge means a body, a patch or a patched document is
// larger than DocumentStoreOptions.MaxBodyBytes (HTTP 413). It wraps
// ErrInvalidValue.
var ErrDocumentTooLarge = fmt.Errorf("%w: document too large", ErrInvalidValue)

// ErrUnknownCollection means a collection name was not configured.
var ErrUnknownCollection = errors.New("shardedapi: unknown collection")

// Document is one JSON document of a collection. IDs are chosen by the
// caller (1..128 bytes of [A-Za-z0-9._~-]) and routed by Key{ID:
// collection + "/" + id}.
type Document struct {
	Collection string
	ID         string
	// Body is the document's JSON object, exactly as stored.
	Body json.RawMessage
	// Rev changes on every write and is never reused, even after a delete
	// and re-create: a strong validator (the origin's ETag).
	Rev       int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Precondition makes a write conditional. The zero value is unconditional.
type Precondition struct {
	// IfRev, when non-zero, requires the document's current Rev to equal it
	// (HTTP If-Match); otherwise ErrPreconditionFailed.
	IfRev int64
	// IfAbsent requires that the document does not exist (HTTP
	// If-None-Match: *); otherwise ErrPreconditionFailed.
	IfAbsent bool
}

// DocumentPage is an answer of List.
type DocumentPage struct {
	Documents []Document // newest (by CreatedAt, then ID) first
	// Next is the cursor of the following page, "" on the last one.
	Next string
	// Partial is true when some shards did not answer in time: Documents
	// then lacks their rows. See Failures.
	Partial  bool
	Failures []ShardFailure
}

// DocumentStore keeps JSON documents of the configured collections on the
// shard of their bucket: reads go through the cache, writes commit on the
// shard and then invalidate, unique fields are enforced across shards.
//
// Reads (Get, List and the loads behind the cache) retry once on a fresh
// connection when a pooled one turns out dead. A shard that is down fails
// only its own documents, with an error for which errors.Is(err,
// ErrShardUnavailable) holds; List then answers Partial.
type DocumentStore struct {
	c           *Cluster
	opts        DocumentStoreOptions
	log         *slog.Logger
	collections map[string]*docCollection
}

// docCollection is a configured collection.
type docCollection struct {
	name   string
	unique []string
}

// namespace is the catalog uniqueness namespace of one unique field.
func (col *docCollection) namespace(field string) string {
	return "doc." + col.name + "." + field
}

// NewDocumentStore validates opts and makes a DocumentStore over c. The
// shards need the schema of Migrate.
func NewDocumentStore(c *Cluster, opts DocumentStoreOptions) (*DocumentStore, error) {
	if c == nil {
		return nil, errors.New("new document store: nil Cluster")
	}
	if len(opts.Collections) == 0 {
		return nil, errors.New("new document store: DocumentStoreOptions.Collections is empty: configure at least one collection")
	}
	switch {
	case opts.MaxBodyBytes == 0:
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	case opts.MaxBodyBytes < 0:
		return nil, fmt.Errorf("new document store: MaxBodyBytes is %d: want a positive size (or 0 for the default)", opts.MaxBodyBytes)
	}
	log := opts.Logger
	if log == nil {
		log = c.log
	}
	s := &DocumentStore{c: c, opts: opts, log: log, collections: map[string]*docCollection{}}
	for i, cc := range opts.Collections {
		if !validCollectionName(cc.Name) {
			return nil, fmt.Errorf("new document store: Collections[%d]: name %q: want [a-z][a-z0-9_-]{0,62}", i, cc.Name)
		}
		if s.collections[cc.Name] != nil {
			return nil, fmt.Errorf("new document store: collection %q is configured twice", cc.Name)
		}
		col := &docCollection{name: cc.Name}
		for _, f := range cc.Unique {
			if f == "" || slices.Contains(col.unique, f) {
				return nil, fmt.Errorf("new document store: collection %q: unique field %q is empty or listed twice", cc.Name, f)
			}
			col.unique = append(col.unique, f)
		}
		s.collections[cc.Name] = col
	}
	return s, nil
}

// DocumentCacheKey is the cache key of a document.
func DocumentCacheKey(collection, id string) string {
	return docCacheKeyPrefix + collection + ":" + id
}

const docCacheKeyPrefix = "shardedapi:doc:v1:"

// Collections are the configured collections' names, sorted.
func (s *DocumentStore) Collections() []string {
	names := make([]string, 0, len(s.collections))
	for n := range s.collections {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// collection checks a collection name and an ID (unless id is "-").
func (s *DocumentStore) collection(name, id string) (*docCollection, error) {
	col := s.collections[name]
	if col == nil {
		if !validCollectionName(name) {
			return nil, fmt.Errorf("collection %.70q: %w (a name is [a-z][a-z0-9_-]{0,62})", name, ErrUnknownCollection)
		}
		return nil, fmt.Errorf("collection %q: %w", name, ErrUnknownCollection)
	}
	if id != "-" {
		if err := checkDocumentID(id); err != nil {
			return nil, err
		}
	}
	return col, nil
}

func (s *DocumentStore) locate(collection, id string) (Location, error) {
	return s.c.Locate(Key{ID: collection + "/" + id})
}

// documentKeys are DocumentCacheKey(collection, id) and the routing key
// locate builds, made in one string (one allocation instead of two:
// Get needs both on every read).
func documentKeys(collection, id string) (cacheKey, routeKey string) {
	both := docCacheKeyPrefix + collection + ":" + id + collection + "/" + id
	n := len(docCacheKeyPrefix) + len(collection) + 1 + len(id)
	return both[:n], both[n:]
}

// Get returns a document, through the cache. ErrNotFound if it does not
// exist; ErrUnknownCollection, ErrInvalidKey for bad names.
func (s *DocumentStore) Get(ctx context.Context, collection, id string) (Document, error) {
	if _, err := s.collection(collection, id); err != nil {
		return Document{}, fmt.Errorf("get document: %w", err)
	}
	key, routeKey := documentKeys(collection, id)
	loc, err := s.c.Locate(Key{ID: routeKey})
	if err != nil {
		return Document{}, fmt.Errorf("get document %s/%s: %w", collection, id, err)
	}
	s.c.CountRead(loc.Bucket)
	if s.opts.Cache == nil {
		d, err := s.load(ctx, loc.Bucket, collection, id)
		if err != nil {
			return Document{}, fmt.Errorf("get document %s/%s: %w", collection, id, err)
		}
		return d, nil
	}
	var (
		b    []byte
		done bool
	)
	if c, ok := s.opts.Cache.(*Cache); ok {
		// An L1 hit is answered before the load closure below is made:
		// making it is a heap allocation, and most reads are hits.
		b, done, err = c.getL1(ctx, key)
	}
	if !done {
		load := func(ctx context.Context) ([]byte, error) {
			d, err := s.load(ctx, loc.Bucket, collection, id)
			if err != nil {
				return nil, err
			}
			return encodeCachedDocument(d), nil
		}
		if c, ok := s.opts.Cache.(*Cache); ok {
			b, err = c.getShared(ctx, key, load)
		} else {
			b, err = s.opts.Cache.Get(ctx, key, load)
		}
	}
	if err != nil {
		return Document{}, fmt.Errorf("get document %s/%s: %w", collection, id, err)
	}
	d, err := decodeCachedDocument(collection, id, b)
	if err != nil {
		// Never served: read the shard.
		s.log.WarnContext(ctx, "undecodable cached document; reading the shard", "collection", collection, "id", id, "err", err)
		if d, err = s.load(ctx, loc.Bucket, collection, id); err != nil {
			return Document{}, fmt.Errorf("get document %s/%s: %w", collection, id, err)
		}
	}
	return d, nil
}

const documentColumns = `id, body, rev, created_at, updated_at`

func scanDocument(row pgx.Row, collection string) (Document, error) {
	d := Document{Collection: collection}
	var body []byte
	err := row.Scan(&d.ID, &body, &d.Rev, &d.CreatedAt, &d.UpdatedAt)
	d.Body = body
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	return d, err
}

// load reads a document from the shard that owns bucket, bypassing the
// cache, behind the read fence (following a moved bucket to its new owner).
func (s *DocumentStore) load(ctx context.Context, bucket int, collection, id string) (Document, error) {
	var d Document
	err := s.c.onBucket(ctx, bucket, func(ctx context.Context, sh *Shard) error {
		err := sh.readRetry(ctx, func(ctx context.Context) error {
			var err error
			d, err = scanDocument(sh.pool.QueryRow(ctx, `SELECT `+documentColumns+` FROM documents WHERE collection = $1 AND id = $2`+readFenceSQL(3), collection, id, bucket), collection)
			return err
		})
		if errors.Is(err, pgx.ErrNoRows) {
			if err := missOrMoved(ctx, sh, bucket); err != nil {
				return err
			}
			return fmt.Errorf("document %s/%s: %w", collection, id, ErrNotFound)
		}
		return sh.Err(ctx, "load document", err)
	})
	if err != nil {
		return Document{}, err
	}
	return d, nil
}

// Lookup finds the document of collection whose unique field has value
// (compared case-insensitively), through the catalog's uniqueness claims
// and then Get. ErrNotFound if none has it; ErrInvalidValue if field is
// not one of the collection's unique fields.
func (s *DocumentStore) Lookup(ctx context.Context, collection, field, value string) (Document, error) {
	col, err := s.collection(collection, "-")
	if err != nil {
		return Document{}, fmt.Errorf("look up document: %w", err)
	}
	if !slices.Contains(col.unique, field) {
		return Document{}, fmt.Errorf("look up %s by %q: %w: not a unique field of the collection", collection, field, ErrInvalidValue)
	}
	v := strings.ToLower(value)
	owner, err := s.c.claimOwner(ctx, col.namespace(field), v)
	if err != nil {
		return Document{}, fmt.Errorf("look up %s by %s: %w", collection, field, err)
	}
	_, id, ok := strings.Cut(owner.key, "/")
	if !ok {
		return Document{}, fmt.Errorf("look up %s by %s: %w", collection, field, ErrNotFound)
	}
	d, err := s.Get(ctx, collection, id)
	if err != nil {
		return Document{}, fmt.Errorf("look up %s by %s: %w", collection, field, err)
	}
	// The claim may be pending or stale: answer only what the document says.
	if vals, _ := uniqueValues(d.Body, []string{field}); vals[field] != v {
		return Document{}, fmt.Errorf("look up %s by %s: %w", collection, field, ErrNotFound)
	}
	return d, nil
}

// Put creates or replaces a document with body (a JSON object), under cond.
// created reports whether it did not exist before. ErrTaken when a unique
// field's value belongs to another document; ErrInvalidValue for a body
// that is not a JSON object or is too large.
//
// A refused unique field is a *UniqueFieldError naming the field (it
// unwraps to ErrTaken). A unique field must be a string or null; values
// are compared lower-cased, and an absent, null or empty field claims
// nothing.
func (s *DocumentStore) Put(ctx context.Context, collection, id string, body json.RawMessage, cond Precondition) (doc Document, created bool, err error) {
	col, err := s.collection(collection, id)
	if err != nil {
		return Document{}, false, fmt.Errorf("put document: %w", err)
	}
	if err := checkJSONObject("body", body, s.opts.MaxBodyBytes); err != nil {
		return Document{}, false, fmt.Errorf("put document %s/%s: %w", collection, id, err)
	}
	r, err := s.write(ctx, col, id, cond, func(*Document) ([]byte, error) { return body, nil })
	if err != nil {
		return Document{}, false, fmt.Errorf("put document %s/%s: %w", collection, id, err)
	}
	return r.doc, r.created, nil
}

// Patch applies a JSON merge patch (RFC 7386) to an existing document,
// under cond, atomically on its shard. ErrNotFound if it does not exist.
// The patch must be a JSON object, and the result within MaxBodyBytes
// (ErrInvalidValue otherwise).
func (s *DocumentStore) Patch(ctx context.Context, collection, id string, patch json.RawMessage, cond Precondition) (Document, error) {
	col, err := s.collection(collection, id)
	if err != nil {
		return Document{}, fmt.Errorf("patch document: %w", err)
	}
	if err := checkJSONObject("patch", patch, s.opts.MaxBodyBytes); err != nil {
		return Document{}, fmt.Errorf("patch document %s/%s: %w", collection, id, err)
	}
	r, err := s.write(ctx, col, id, cond, func(cur *Document) ([]byte, error) {
		if cur == nil {
			return nil, fmt.Errorf("document %s/%s: %w", collection, id, ErrNotFound)
		}
		b, err := mergePatch(cur.Body, patch)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
		}
		if len(b) > s.opts.MaxBodyBytes {
			return nil, fmt.Errorf("patched document of %d bytes: %w: larger than the %d-byte limit", len(b), ErrDocumentTooLarge, s.opts.MaxBodyBytes)
		}
		return b, nil
	})
	if err != nil {
		return Document{}, fmt.Errorf("patch document %s/%s: %w", collection, id, err)
	}
	return r.doc, nil
}

// Delete removes a document, under cond. ErrNotFound if it does not exist.
func (s *DocumentStore) Delete(ctx context.Context, collection, id string, cond Precondition) error {
	col, err := s.collection(collection, id)
	if err != nil {
		return fmt.Errorf("delete document: %w", err)
	}
	_, err = s.write(ctx, col, id, cond, func(cur *Document) ([]byte, error) {
		if cur == nil {
			return nil, fmt.Errorf("document %s/%s: %w", collection, id, ErrNotFound)
		}
		return nil, nil
	})
	if err != nil {
		return fmt.Errorf("delete document %s/%s: %w", collection, id, err)
	}
	return nil
}

// checkPrecondition checks cond against the current document (nil: absent).
func checkPrecondition(cond Precondition, cur *Document) error {
	switch {
	case cond.IfAbsent && cur != nil:
		return fmt.Errorf("%w: the document exists (rev %d)", ErrPreconditionFailed, cur.Rev)
	case cond.IfRev != 0 && cur == nil:
		return fmt.Errorf("%w: want rev %d, the document does not exist", ErrPreconditionFailed, cond.IfRev)
	case cond.IfRev != 0 && cur.Rev != cond.IfRev:
		return fmt.Errorf("%w: want rev %d, the document is at rev %d", ErrPreconditionFailed, cond.IfRev, cur.Rev)
	}
	return nil
}

// writeResult is what a committed write did.
type writeResult struct {
	doc     Document
	created bool
}

// errWriteConflict makes write start over: the document changed between
// the claims and the transaction, or another writer created it first.
var errWriteConflict = errors.New("document changed concurrently")

// maxWriteAttempts bounds how often a write starts over on a conflict.
const maxWriteAttempts = 8

// write runs one write of a document on its shard. mutate computes the new
// body from the current document (nil: absent); a nil body with a nil
// error deletes. It may be called twice per attempt (to plan the claims,
// then inside the transaction) and must be deterministic.
//
// With unique fields it follows the claim protocol of Cluster.Claim: read
// the document, claim the new values (holding no shard connection, since
// a claim may read other documents), then in the shard transaction lock
// the row and start over if it changed since the read; after the commit,
// confirm the new claims and release values the document no longer has.
func (s *DocumentStore) write(ctx context.Context, col *docCollection, id string, cond Precondition, mutate func(cur *Document) ([]byte, error)) (writeResult, error) {
	loc, err := s.locate(col.name, id)
	if err != nil {
		return writeResult{}, err
	}
	owner := claimant{key: col.name + "/" + id}
	for range maxWriteAttempts {
		var (
			planned bool
			expect  *Document
			claims  *docClaims
		)
		if len(col.unique) > 0 {
			cur, err := s.load(ctx, loc.Bucket, col.name, id)
			switch {
			case errors.Is(err, ErrNotFound):
				cur = Document{}
			case err != nil:
				return writeResult{}, err
			default:
				expect = &cur
			}
			if err := checkPrecondition(cond, expect); err != nil {
				return writeResult{}, err
			}
			next, err := mutate(expect)
			if err != nil {
				return writeResult{}, err
			}
			if claims, err = s.claim(ctx, col, owner, next); err != nil {
				return writeResult{}, err
			}
			planned = true
		}
		var (
			r      writeResult
			before *Document
			after  []byte
		)
		var sh *Shard
		err := s.c.BucketTx(ctx, loc.Bucket, func(ctx context.Context, tx pgx.Tx, txShard *Shard) error {
			sh = txShard
			r, before, after = writeResult{}, nil, nil
			cur, err := scanDocument(tx.QueryRow(ctx, `SELECT `+documentColumns+` FROM documents WHERE collection = $1 AND id = $2 FOR UPDATE`, col.name, id), col.name)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return sh.Err(ctx, "lock document", err)
			default:
				before = &cur
			}
			if planned && !sameRev(expect, before) {
				return errWriteConflict
			}
			if err := checkPrecondition(cond, before); err != nil {
				return err
			}
			if after, err = mutate(before); err != nil {
				return err
			}
			if after == nil {
				_, err := tx.Exec(ctx, `DELETE FROM documents WHERE collection = $1 AND id = $2`, col.name, id)
				return sh.Err(ctx, "delete document", err)
			}
			if before == nil {
				r.created = true
				r.doc, err = scanDocument(tx.QueryRow(ctx, `INSERT INTO documents (collection, id, bucket, body, rev)
					VALUES ($1, $2, $3, $4, shardedapi_next_id($3))
					ON CONFLICT (collection, id) DO NOTHING
					RETURNING `+documentColumns, col.name, id, loc.Bucket, string(after)), col.name)
				if errors.Is(err, pgx.ErrNoRows) {
					return errWriteConflict // created by another writer meanwhile
				}
				return sh.Err(ctx, "create document", err)
			}
			r.doc, err = scanDocument(tx.QueryRow(ctx, `UPDATE documents SET body = $3, rev = shardedapi_next_id($4), updated_at = now()
				WHERE collection = $1 AND id = $2 RETURNING `+documentColumns, col.name, id, string(after), loc.Bucket), col.name)
			return sh.Err(ctx, "update document", err)
		})
		if errors.Is(err, errWriteConflict) {
			claims.release(ctx, s)
			continue
		}
		var se *ShardError
		if err != nil && sh != nil && !errors.As(err, &se) && !errors.Is(err, ErrPreconditionFailed) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidValue) && !errors.Is(err, ErrBucketMoved) {
			err = sh.Err(ctx, "write document", err) // begin or commit failed
		}
		if err != nil && errors.As(err, &se) {
			// The commit may have happened: drop the cached copy anyway.
			s.invalidate(ctx, col.name, id)
		}
		if err != nil {
			claims.release(ctx, s)
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
				// A data exception: JSON PostgreSQL cannot store (a \u0000
				// escape, a number out of range).
				return writeResult{}, fmt.Errorf("body: %w: %s", ErrInvalidValue, pgErr.Message)
			}
			return writeResult{}, err
		}
		s.c.CountWrite(loc.Bucket)
		s.invalidate(ctx, col.name, id)
		claims.confirm(ctx, s)
		if before != nil && len(col.unique) > 0 {
			s.releaseOld(ctx, col, owner, before.Body, after)
		}
		return r, nil
	}
	return writeResult{}, fmt.Errorf("%w: other writers kept changing it; try again", errWriteConflict)
}

// sameRev reports whether two reads of a document saw the same version.
func sameRev(a, b *Document) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Rev == b.Rev
}

// docClaims are the uniqueness claims one write took (fresh ones only:
// values the document already held are not released on failure).
type docClaims struct {
	owner claimant
	fresh []docClaim
}

type docClaim struct{ namespace, value string }

// claim claims body's unique values for owner. On ErrTaken every claim it
// made is released and the error names the field.
func (s *DocumentStore) claim(ctx context.Context, col *docCollection, owner claimant, body []byte) (*docClaims, error) {
	vals, err := uniqueValues(body, col.unique)
	if err != nil || len(vals) == 0 {
		return nil, err
	}
	cl := &docClaims{owner: owner}
	for _, f := range col.unique {
		v, ok := vals[f]
		if !ok {
			continue
		}
		ns := col.namespace(f)
		fresh, err := s.c.claim(ctx, ns, v, owner, s.holds(col, f))
		if err != nil {
			cl.release(ctx, s)
			if errors.Is(err, ErrTaken) {
				return nil, &UniqueFieldError{Collection: col.name, Field: f, Err: err}
			}
			return nil, err
		}
		if fresh {
			cl.fresh = append(cl.fresh, docClaim{ns, v})
		}
	}
	return cl, nil
}

func (cl *docClaims) release(ctx context.Context, s *DocumentStore) {
	if cl == nil {
		return
	}
	for _, c := range cl.fresh {
		if err := s.c.releaseClaim(context.WithoutCancel(ctx), c.namespace, c.value, cl.owner); err != nil {
			s.log.WarnContext(ctx, "release a claim after a failed write; it is verified on the next claim", "owner", cl.owner.String(), "err", err)
		}
	}
}

func (cl *docClaims) confirm(ctx context.Context, s *DocumentStore) {
	if cl == nil {
		return
	}
	for _, c := range cl.fresh {
		if err := s.c.confirmClaim(ctx, c.namespace, c.value, cl.owner); err != nil {
			s.log.WarnContext(ctx, "confirm a claim; it stays pending and is verified on conflict", "owner", cl.owner.String(), "err", err)
		}
	}
}

// releaseOld frees the unique values the committed write removed.
func (s *DocumentStore) releaseOld(ctx context.Context, col *docCollection, owner claimant, before, after []byte) {
	old, err := uniqueValues(before, col.unique)
	if err != nil {
		return
	}
	now, _ := uniqueValues(after, col.unique)
	for f, v := range old {
		if now[f] == v {
			continue
		}
		if err := s.c.releaseClaim(ctx, col.namespace(f), v, owner); err != nil {
			s.log.WarnContext(ctx, "release an old unique value; it is verified and dropped on the next claim", "owner", owner.String(), "field", f, "err", err)
		}
	}
}

// holds is the claim check of field: does owner's document (read from its
// shard, bypassing the cache) still have value?
func (s *DocumentStore) holds(col *docCollection, field string) claimantHolds {
	return func(ctx context.Context, owner claimant, value string) (bool, error) {
		name, id, ok := strings.Cut(owner.key, "/")
		if !ok || name != col.name {
			return false, fmt.Errorf("claim of %s field %q is held by %s, not by a document of the collection", col.name, field, owner)
		}
		loc, err := s.locate(name, id)
		if err != nil {
			return false, err
		}
		d, err := s.load(ctx, loc.Bucket, name, id)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		vals, err := uniqueValues(d.Body, []string{field})
		if err != nil {
			return false, nil
		}
		return vals[field] == value, nil
	}
}

// invalidate deletes a document's cache entry after a write. The write has
// committed, so a cache error is logged, not returned: the cache layer
// retries the invalidation or its TTL bounds the staleness.
func (s *DocumentStore) invalidate(ctx context.Context, collection, id string) {
	if s.opts.Cache == nil {
		return
	}
	if err := s.opts.Cache.Invalidate(ctx, DocumentCacheKey(collection, id)); err != nil {
		s.log.WarnContext(ctx, "invalidate cached document after a committed write", "collection", collection, "id", id, "err", err)
	}
}

// List returns up to limit (1..1000) documents of a collection, newest
// first across every shard (scatter-gather), starting after cursor ("" for
// the first page). A malformed cursor is ErrInvalidValue.
//
// Order is by CreatedAt, then ID (bytewise), both descending; the cursor
// is opaque (base64url of the last document's creation time and ID) and
// stays valid while documents are written: a page starts strictly after
// the previous one's last document. A Partial page lacks the failed
// shards' documents; its Next still continues after the documents it has.
func (s *DocumentStore) List(ctx context.Context, collection string, limit int, cursor string, opts GatherOptions) (DocumentPage, error) {
	if _, err := s.collection(collection, "-"); err != nil {
		return DocumentPage{}, fmt.Errorf("list documents: %w", err)
	}
	if limit < 1 || limit > MaxListLimit {
		return DocumentPage{}, fmt.Errorf("list %s: %w: limit is %d, want 1..%d", collection, ErrInvalidValue, limit, MaxListLimit)
	}
	var after *listCursor
	if cursor != "" {
		c, err := decodeCursor(cursor)
		if err != nil {
			return DocumentPage{}, fmt.Errorf("list %s: %w", collection, err)
		}
		after = &c
	}
	// One more than the page per shard tells whether there is a next page.
	g, err := Gather(ctx, s.c, opts, func(ctx context.Context, sh *Shard) (docs []Document, err error) {
		err = sh.readRetry(ctx, func(ctx context.Context) error {
			var rows pgx.Rows
			var err error
			if after == nil {
				rows, err = sh.pool.Query(ctx, `SELECT `+documentColumns+` FROM documents WHERE collection = $1`+ownedRowsSQL("documents")+`
					ORDER BY created_at DESC, id DESC LIMIT $2`, collection, limit+1)
			} else {
				rows, err = sh.pool.Query(ctx, `SELECT `+documentColumns+` FROM documents WHERE collection = $1`+ownedRowsSQL("documents")+`
					AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4`,
					collection, time.UnixMicro(after.created), after.id, limit+1)
			}
			if err != nil {
				return err
			}
			docs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Document, error) { return scanDocument(r, collection) })
			return err
		})
		return docs, err
	})
	if err != nil {
		return DocumentPage{}, fmt.Errorf("list %s: %w", collection, err)
	}
	slices.SortFunc(g.Items, func(a, b Document) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	// A row copied to another shard by a bucket move (and not yet deleted
	// from the old one) would appear twice.
	g.Items = slices.CompactFunc(g.Items, func(a, b Document) bool { return a.ID == b.ID && a.CreatedAt.Equal(b.CreatedAt) })
	page := DocumentPage{Partial: g.Partial, Failures: g.Failures}
	if len(g.Items) > limit {
		g.Items = g.Items[:limit]
		page.Next = encodeCursor(g.Items[limit-1])
	}
	page.Documents = g.Items
	return page, nil
}
