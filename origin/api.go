package origin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/assetctl/assetctl/shardedapi"
	"github.com/prometheus/client_golang/prometheus"
)

// Documents is what the API needs from a document store;
// *shardedapi.DocumentStore implements it.
type Documents interface {
	Get(ctx context.Context, collection, id string) (shardedapi.Document, error)
	Put(ctx context.Context, collection, id string, body json.RawMessage, cond shardedapi.Precondition) (doc shardedapi.Document, created bool, err error)
	Patch(ctx context.Context, collection, id string, patch json.RawMessage, cond shardedapi.Precondition) (shardedapi.Document, error)
	Delete(ctx context.Context, collection, id string, cond shardedapi.Precondition) error
	List(ctx context.Context, collection string, limit int, cursor string, opts shardedapi.GatherOptions) (shardedapi.DocumentPage, error)
}

var _ Documents = (*shardedapi.DocumentStore)(nil)

// APICollection is one collection the API serves.
type APICollection struct {
	// Name is the collection's name in URLs (/api/{Name}/{id}); the store
	// must know it too. Required.
	Name string
	// PrivateReads makes reads need a bearer token like writes; their
	// responses are then always "private, no-store" and carry no cache
	// tags. Default false: reads are public.
	PrivateReads bool
	// Cache is the Cache-Control of successful public reads (a document and
	// list pages). Default: the zero CachePolicy, "private, no-store".
	Cache CachePolicy
}

// APIOptions configure an API. Only Collections is required.
type APIOptions struct {
	// Collections are the collections served; any other name answers 404.
	Collections []APICollection
	// Tokens are the bearer tokens accepted for writes and for reads of
	// PrivateReads collections. Default none: every write answers 401.
	Tokens []string
	// Prefix is the path the API is mounted at. Default "/api/".
	Prefix string
	// MaxBodyBytes caps a request body; a larger one answers 413. Default
	// 1 MiB.
	MaxBodyBytes int64
	// DefaultLimit is the page size of a list without ?limit. Default 20;
	// ?limit may ask for 1 to 1000.
	DefaultLimit int
	// Gather tunes list queries across shards (the per-shard timeout after
	// which a shard's rows are left out and the page flagged partial).
	// Default: shardedapi's defaults.
	Gather shardedapi.GatherOptions
	// RetryAfter is the Retry-After of a 503 (a shard is unavailable).
	// Default 5 seconds.
	RetryAfter time.Duration
	// CORS lets browsers on other origins call the API. Default off.
	CORS CORSOptions
	// Purger purges a document's cache tags at the edge after each
	// committed write. Default nil: no purges (fine when nothing shared
	// caches the API, that is when every Cache is the zero value).
	Purger Purger
	// PurgeTimeout bounds one purge attempt. Default 2 seconds.
	PurgeTimeout time.Duration
	// PurgeRetryFor is how long a failed purge is retried in the background
	// (exponential backoff) before it is given up, logged and counted.
	// Default 1 minute.
	PurgeRetryFor time.Duration
	// MaxPendingPurges bounds the purges being retried at once; beyond it a
	// failed purge is dropped (logged, counted). Default 1000.
	MaxPendingPurges int
	// Logger receives the API's logs. Default: discarded.
	Logger *slog.Logger
	// Registerer receives the API's metrics (origin_edge_purges_total).
	// Default: kept but not registered.
	Registerer prometheus.Registerer
}

// API serves the collections' documents as JSON:
//
//	GET, HEAD, PUT, PATCH, DELETE /api/{collection}/{id}
//	GET, HEAD                     /api/{collection}?limit=N&cursor=C
//
// See the README's "JSON API" section for status codes and headers.
type API struct {
	docs        Documents
	prefix      string
	collections map[string]*apiCollection
	tokens      tokens
	maxBody     int64
	defLimit    int
	gather      shardedapi.GatherOptions
	retryAfter  []string
	cors        *cors
	edge        *edgePurge
	log         *slog.Logger
}

// apiCollection is an APICollection with its header values computed once.
type apiCollection struct {
	APICollection
	itemRoute, listRoute string
	cacheControl         []string
	shared               bool
	listTag              string
}

var (
	collectionName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	jsonType       = []string{"application/json"}
	noStore        = []string{"no-store"}
)

const (
	itemAllow = "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"
	listAllow = "GET, HEAD, OPTIONS"
)

// NewAPI validates o and makes an API over docs.
func NewAPI(docs Documents, o APIOptions) (*API, error) {
	if docs == nil {
		return nil, errors.New("new API: no document store")
	}
	if len(o.Collections) == 0 {
		return nil, errors.New("new API: no collections: configure at least one")
	}
	a := &API{docs: docs, prefix: o.Prefix, collections: map[string]*apiCollection{}, maxBody: o.MaxBodyBytes,
		defLimit: o.DefaultLimit, gather: o.Gather, log: o.Logger}
	if a.prefix == "" {
		a.prefix = "/api/"
	}
	if !strings.HasPrefix(a.prefix, "/") || !strings.HasSuffix(a.prefix, "/") {
		return nil, fmt.Errorf("new API: prefix %q: want a path that starts and ends with /", a.prefix)
	}
	if a.maxBody <= 0 {
		a.maxBody = 1 << 20
	}
	if a.defLimit <= 0 {
		a.defLimit = 20
	}
	if a.defLimit > shardedapi.MaxListLimit {
		return nil, fmt.Errorf("new API: default limit %d: at most %d", a.defLimit, shardedapi.MaxListLimit)
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	ra := o.RetryAfter
	if ra <= 0 {
		ra = 5 * time.Second
	}
	a.retryAfter = []string{strconv.FormatInt(seconds(ra), 10)}
	for _, c := range o.Collections {
		if !collectionName.MatchString(c.Name) {
			return nil, fmt.Errorf("new API: collection name %q: want [a-z][a-z0-9_-]{0,62}", c.Name)
		}
		if a.collections[c.Name] != nil {
			return nil, fmt.Errorf("new API: collection %q is configured twice", c.Name)
		}
		ac := &apiCollection{APICollection: c, itemRoute: a.prefix + c.Name + "/{id}", listRoute: a.prefix + c.Name,
			shared: c.Cache.Shared() && !c.PrivateReads, listTag: CollectionTag(c.Name)}
		if ac.shared {
			ac.cacheControl = []string{c.Cache.String()}
		} else {
			ac.cacheControl = []string{CachePolicy{}.String()}
		}
		a.collections[c.Name] = ac
	}
	var err error
	if a.tokens, err = newTokens(o.Tokens); err != nil {
		return nil, fmt.Errorf("new API: %w", err)
	}
	if a.cors, err = newCORS(o.CORS); err != nil {
		return nil, fmt.Errorf("new API: %w", err)
	}
	if o.Purger != nil {
		e := &edgePurge{p: o.Purger, log: a.log, timeout: o.PurgeTimeout, retryFor: o.PurgeRetryFor,
			max: o.MaxPendingPurges, stop: make(chan struct{})}
		if e.timeout <= 0 {
			e.timeout = 2 * time.Second
		}
		if e.retryFor <= 0 {
			e.retryFor = time.Minute
		}
		if e.max <= 0 {
			e.max = 1000
		}
		e.results = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "origin_edge_purges_total",
			Help: "Edge cache tag purges after writes, by result: ok (first attempt), retried (succeeded after retries), failed (given up or dropped).",
		}, []string{"result"})
		if o.Registerer != nil {
			if err := o.Registerer.Register(e.results); err != nil {
				return nil, fmt.Errorf("new API: register metrics: %w (one API per registry)", err)
			}
		}
		a.edge = e
	}
	return a, nil
}

// Close waits for edge purges still being retried, cancelling them when
// ctx ends first. Call it after the server has shut down.
func (a *API) Close(ctx context.Context) error { return a.edge.close(ctx) }

// ServeHTTP routes /api/{collection}[/{id}].
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, a.prefix)
	if !ok {
		writeError(w, errorf(http.StatusNotFound, "not found: the API lives under "+a.prefix))
		return
	}
	name, id, hasID := strings.Cut(rest, "/")
	c := a.collections[name]
	if c == nil {
		setRoute(r.Context(), a.prefix+"{collection}")
		if name == "" {
			writeError(w, errorf(http.StatusNotFound, "no collection in the path: use "+a.prefix+"{collection}/{id}"))
			return
		}
		writeError(w, errorf(http.StatusNotFound, fmt.Sprintf("unknown collection %q: the server serves %s", name, a.names())))
		return
	}
	if a.cors.preflight(w, r) {
		setRoute(r.Context(), c.listRoute+"/*")
		return
	}
	a.cors.actual(w, r)
	if !hasID || id == "" {
		setRoute(r.Context(), c.listRoute)
		a.serveList(w, r, c)
		return
	}
	setRoute(r.Context(), c.itemRoute)
	if !validID(id) {
		writeError(w, errorf(http.StatusBadRequest, fmt.Sprintf("invalid document id %q: want 1 to 128 characters of A-Z a-z 0-9 . _ ~ - (not . or ..)", truncate(id, 140))))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if c.PrivateReads && !a.authorized(w, r) {
			return
		}
		a.get(w, r, c, id)
	case http.MethodPut:
		if a.authorized(w, r) {
			a.put(w, r, c, id)
		}
	case http.MethodPatch:
		if a.authorized(w, r) {
			a.patch(w, r, c, id)
		}
	case http.MethodDelete:
		if a.authorized(w, r) {
			a.delete(w, r, c, id)
		}
	case http.MethodOptions:
		w.Header().Set("Allow", itemAllow)
		w.WriteHeader(http.StatusNoContent)
	default:
		methodNotAllowed(w, r, itemAllow)
	}
}

func (a *API) names() string {
	return strings.Join(slices.Sorted(maps.Keys(a.collections)), ", ")
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	e := errorf(http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed here", truncate(r.Method, 40)))
	e.Allow = allow
	writeError(w, e)
}

// authorized checks the bearer token and answers 401 when it is missing
// or wrong.
func (a *API) authorized(w http.ResponseWriter, r *http.Request) bool {
	res := a.tokens.check(r)
	if res == authOK {
		return true
	}
	writeUnauthorized(w, res)
	return false
}

// validID mirrors shardedapi's document IDs: 1..128 bytes of
// [A-Za-z0-9._~-]; "." and ".." are refused because they cannot be
// addressed in a URL path (clients and proxies resolve them away).
func validID(id string) bool {
	if len(id) == 0 || len(id) > 128 || id == "." || id == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '~' || c == '-') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// etag is a document's strong validator: its revision, quoted.
func etag(rev int64) string {
	var b [2 + 20]byte
	return string(appendETag(b[:0], rev))
}

func appendETag(dst []byte, rev int64) []byte {
	dst = append(dst, '"')
	dst = strconv.AppendInt(dst, rev, 10)
	return append(dst, '"')
}

// get answers a document: the stored body bytes as they are, never
// re-encoded, with its ETag; 304 when If-None-Match matches.
func (a *API) get(w http.ResponseWriter, r *http.Request, c *apiCollection, id string) {
	doc, err := a.docs.Get(r.Context(), c.Name, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	h := w.Header()
	// The ETag and the document's cache tag are built in one string and
	// their header values share one []string backing array: an
	// allocation per value showed in the profile. net/http copies the
	// values at WriteHeader, so sharing the array is safe.
	var buf [2 + 20 + tagLen]byte
	b := appendETag(buf[:0], doc.Rev)
	n := len(b)
	if c.shared {
		b = appendDocumentTag(b, c.Name, id)
	}
	both := string(b)
	vals := make([]string, 2)
	vals[0] = both[:n]
	h["Etag"] = vals[0:1:1]
	h["Cache-Control"] = c.cacheControl
	if c.shared {
		// DocumentTag is always a header-safe token well under
		// MaxCacheTagBytes: SetCacheTags' one-tag case without its
		// checks and its slice.
		vals[1] = both[n:]
		h["Surrogate-Key"] = vals[1:2:2]
		h["Xkey"] = vals[1:2:2]
	}
	if inm, ok := r.Header["If-None-Match"]; ok && etagListMatches(inm, doc.Rev, true) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	// No Content-Length: net/http computes it for a body written in one
	// piece, without a header map entry.
	h["Content-Type"] = jsonType
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc.Body)
}

// etagListMatches reports whether an If-Match / If-None-Match header
// (possibly several lines, each a comma-separated list, or "*") names rev.
// weak selects the weak comparison If-None-Match uses (W/"5" matches "5").
func etagListMatches(lines []string, rev int64, weak bool) bool {
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ",") {
			t := strings.TrimSpace(part)
			if t == "*" {
				return true
			}
			if strings.HasPrefix(t, "W/") {
				if !weak {
					continue
				}
				t = t[2:]
			}
			if n, ok := parseETag(t); ok && n == rev {
				return true
			}
		}
	}
	return false
}

// parseETag reads a revision from a quoted ETag the API issued.
func parseETag(t string) (int64, bool) {
	if len(t) < 3 || t[0] != '"' || t[len(t)-1] != '"' {
		return 0, false
	}
	n, err := strconv.ParseInt(t[1:len(t)-1], 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// precondition turns If-Match / If-None-Match into the store's
// Precondition, so the check and the write are one atomic step on the
// shard. A list of ETags or "*" needs the current revision first: it is
// read, checked, and then required by the write (IfRev), which keeps the
// whole check atomic. ok false means a 412 (or another error) was answered.
func (a *API) precondition(w http.ResponseWriter, r *http.Request, c *apiCollection, id string) (cond shardedapi.Precondition, ok bool) {
	im, hasIM := r.Header["If-Match"]
	inm, hasINM := r.Header["If-None-Match"]
	if !hasIM && !hasINM {
		return cond, true
	}
	if hasINM && len(inm) == 1 && strings.TrimSpace(inm[0]) == "*" && !hasIM {
		cond.IfAbsent = true
		return cond, true
	}
	if hasIM && !hasINM && len(im) == 1 && !strings.ContainsRune(im[0], ',') {
		t := strings.TrimSpace(im[0])
		if t != "*" {
			n, ok := parseETag(t)
			if !ok {
				preconditionFailed(w, "If-Match "+truncate(t, 80)+" is not an ETag this API issued: GET the document for its ETag")
				return cond, false
			}
			cond.IfRev = n
			return cond, true
		}
	}
	cur, err := a.docs.Get(r.Context(), c.Name, id)
	exists := err == nil
	if err != nil && !errors.Is(err, shardedapi.ErrNotFound) {
		a.fail(w, r, err)
		return cond, false
	}
	if hasIM && (!exists || !etagListMatches(im, cur.Rev, false)) {
		preconditionFailed(w, "If-Match does not match the document's current ETag: GET it again, reapply the change and retry")
		return cond, false
	}
	if hasINM && exists && etagListMatches(inm, cur.Rev, true) {
		preconditionFailed(w, "If-None-Match matches the document's current ETag")
		return cond, false
	}
	if exists {
		cond.IfRev = cur.Rev
	} else {
		cond.IfAbsent = true
	}
	return cond, true
}

func preconditionFailed(w http.ResponseWriter, msg string) {
	writeError(w, errorf(http.StatusPreconditionFailed, msg))
}

// readJSON reads a request body of at most maxBody bytes that must be
// valid JSON (an object when object is set). ok false means an error was
// answered.
func (a *API) readJSON(w http.ResponseWriter, r *http.Request, object bool) (json.RawMessage, bool) {
	if r.ContentLength > a.maxBody {
		a.tooLarge(w)
		return nil, false
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, a.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			a.tooLarge(w)
			return nil, false
		}
		writeError(w, errorf(http.StatusBadRequest, "read the request body: "+err.Error()))
		return nil, false
	}
	body := buf.Bytes()
	if !json.Valid(body) {
		var raw json.RawMessage
		err := json.Unmarshal(body, &raw)
		e := errorf(http.StatusBadRequest, "malformed JSON in the request body")
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			off := se.Offset
			e.Offset = &off
			e.Error = fmt.Sprintf("malformed JSON at byte offset %d of the request body: %s", off, se.Error())
		}
		writeError(w, e)
		return nil, false
	}
	if object {
		if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
			writeError(w, errorf(http.StatusBadRequest, "the request body must be a JSON object"))
			return nil, false
		}
	}
	return body, true
}

func (a *API) tooLarge(w http.ResponseWriter) {
	e := errorf(http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than the limit of %d bytes", a.maxBody))
	e.Limit = a.maxBody
	// The rest of an oversized body is not read; closing the connection
	// keeps the client from blocking while it sends it.
	w.Header().Set("Connection", "close")
	writeError(w, e)
}

// jsonContent reports whether the request's Content-Type is JSON (or
// absent, which is taken as JSON), answering 415 otherwise.
func jsonContent(w http.ResponseWriter, r *http.Request, want string) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" && want == "application/json" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == want || want == "application/json" && strings.HasSuffix(mt, "+json") && mt != "application/merge-patch+json") {
		return true
	}
	if want == "application/merge-patch+json" {
		w.Header().Set("Accept-Patch", want)
	}
	writeError(w, errorf(http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q is not accepted here: send %s", truncate(ct, 80), want)))
	return false
}

func (a *API) put(w http.ResponseWriter, r *http.Request, c *apiCollection, id string) {
	if !jsonContent(w, r, "application/json") {
		return
	}
	body, ok := a.readJSON(w, r, true)
	if !ok {
		return
	}
	cond, ok := a.precondition(w, r, c, id)
	if !ok {
		return
	}
	doc, created, err := a.docs.Put(r.Context(), c.Name, id, body, cond)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.purge(r.Context(), c, id)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", a.prefix+c.Name+"/"+id)
	}
	a.writeDocument(w, doc, status)
}

func (a *API) patch(w http.ResponseWriter, r *http.Request, c *apiCollection, id string) {
	if !jsonContent(w, r, "application/merge-patch+json") {
		return
	}
	body, ok := a.readJSON(w, r, false)
	if !ok {
		return
	}
	cond, ok := a.precondition(w, r, c, id)
	if !ok {
		return
	}
	doc, err := a.docs.Patch(r.Context(), c.Name, id, body, cond)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.purge(r.Context(), c, id)
	a.writeDocument(w, doc, http.StatusOK)
}

func (a *API) delete(w http.ResponseWriter, r *http.Request, c *apiCollection, id string) {
	cond, ok := a.precondition(w, r, c, id)
	if !ok {
		return
	}
	if err := a.docs.Delete(r.Context(), c.Name, id, cond); err != nil {
		a.fail(w, r, err)
		return
	}
	a.purge(r.Context(), c, id)
	w.Header()["Cache-Control"] = noStore
	w.WriteHeader(http.StatusNoContent)
}

// purge drops, at the edge, the document's pages and its collection's
// list pages. It runs after the commit and never fails the request.
func (a *API) purge(ctx context.Context, c *apiCollection, id string) {
	a.edge.purge(ctx, []string{DocumentTag(c.Name, id), c.listTag})
}

// writeDocument answers a write with the stored document.
func (a *API) writeDocument(w http.ResponseWriter, doc shardedapi.Document, status int) {
	h := w.Header()
	h["Etag"] = []string{etag(doc.Rev)}
	h["Cache-Control"] = noStore
	h["Content-Type"] = jsonType
	h["Content-Length"] = []string{strconv.Itoa(len(doc.Body))}
	w.WriteHeader(status)
	_, _ = w.Write(doc.Body)
}

// listItem is one document of a list page.
type listItem struct {
	ID        string          `json:"id"`
	Rev       int64           `json:"rev"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	Body      json.RawMessage `json:"body"`
}

// listPage is the JSON body of a list.
type listPage struct {
	Items []listItem `json:"items"`
	// Next is the cursor of the following page, "" on the last one.
	Next string `json:"next"`
	// Partial is true when some shards did not answer: Items then lack
	// their documents, and UnavailableShards names them.
	Partial           bool     `json:"partial"`
	UnavailableShards []string `json:"unavailable_shards,omitempty"`
}

func (a *API) serveList(w http.ResponseWriter, r *http.Request, c *apiCollection) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		w.Header().Set("Allow", listAllow)
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		methodNotAllowed(w, r, listAllow)
		return
	}
	if c.PrivateReads && !a.authorized(w, r) {
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, errorf(http.StatusBadRequest, "malformed query string: "+err.Error()))
		return
	}
	limit := a.defLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > shardedapi.MaxListLimit {
			writeError(w, errorf(http.StatusBadRequest, fmt.Sprintf("limit %q: want a whole number from 1 to %d", truncate(s, 40), shardedapi.MaxListLimit)))
			return
		}
		limit = n
	}
	cursor := q.Get("cursor")
	page, err := a.docs.List(r.Context(), c.Name, limit, cursor, a.gather)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := listPage{Items: make([]listItem, len(page.Documents)), Next: page.Next, Partial: page.Partial}
	for i, d := range page.Documents {
		out.Items[i] = listItem{ID: d.ID, Rev: d.Rev, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, Body: d.Body}
	}
	for _, f := range page.Failures {
		out.UnavailableShards = append(out.UnavailableShards, f.Shard)
	}
	b, err := json.Marshal(out)
	if err != nil {
		a.fail(w, r, fmt.Errorf("encode list page: %w", err))
		return
	}
	b = append(b, '\n')
	h := w.Header()
	if page.Partial || len(page.Failures) > 0 {
		// A partial page must not be kept by the CDN: it would hide the
		// missing shard's documents after the shard returns.
		h.Set("X-Partial-Result", "shards="+strings.Join(out.UnavailableShards, ","))
		h["Cache-Control"] = noStore
		a.log.Warn("list answered without some shards", "collection", c.Name, "shards", out.UnavailableShards)
	} else {
		h["Cache-Control"] = c.cacheControl
		if c.shared {
			SetCacheTags(h, c.listTag)
		}
	}
	if page.Next != "" {
		v := url.Values{}
		v.Set("limit", strconv.Itoa(limit))
		v.Set("cursor", page.Next)
		h.Set("Link", "<"+a.prefix+c.Name+"?"+v.Encode()+`>; rel="next"`)
	}
	h["Content-Type"] = jsonType
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// fail answers a store error with its status: the client's mistakes are
// 4xx naming what to fix; an unreachable shard is 503 with Retry-After;
// anything else is a logged 500 whose details stay in the log.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, shardedapi.ErrNotFound):
		writeError(w, errorf(http.StatusNotFound, "document not found"))
	case errors.Is(err, shardedapi.ErrUnknownCollection):
		writeError(w, errorf(http.StatusNotFound, "unknown collection"))
	case errors.Is(err, shardedapi.ErrInvalidKey), errors.Is(err, shardedapi.ErrInvalidID):
		writeError(w, errorf(http.StatusBadRequest, "invalid document id: "+err.Error()))
	case errors.Is(err, shardedapi.ErrPreconditionFailed):
		preconditionFailed(w, "the document changed (or exists) since the ETag you sent: GET it again, reapply the change and retry")
	case errors.Is(err, shardedapi.ErrTaken):
		e := errorf(http.StatusConflict, "a unique field's value belongs to another document: "+err.Error())
		e.Field = takenField(err)
		if e.Field != "" {
			e.Error = fmt.Sprintf("field %q: its value belongs to another document: choose another value", e.Field)
		}
		writeError(w, e)
	case errors.Is(err, shardedapi.ErrDocumentTooLarge):
		// A patch that makes the document larger than the store allows.
		writeError(w, errorf(http.StatusRequestEntityTooLarge, err.Error()))
	case errors.Is(err, shardedapi.ErrInvalidValue):
		writeError(w, errorf(http.StatusBadRequest, err.Error()))
	case errors.Is(err, shardedapi.ErrShardUnavailable):
		e := errorf(http.StatusServiceUnavailable, "the shard that holds this data is unavailable: retry later")
		if se, ok := errors.AsType[*shardedapi.ShardError](err); ok {
			e.Shard = se.Shard
		}
		w.Header()["Retry-After"] = a.retryAfter
		a.log.Warn("shard unavailable", "path", r.URL.Path, "err", err)
		writeError(w, e)
	case r.Context().Err() != nil || errors.Is(err, context.DeadlineExceeded):
		// The client left, or the request ran out of time: a retry may
		// succeed, so this is the same 503 as an unreachable shard.
		w.Header()["Retry-After"] = a.retryAfter
		writeError(w, errorf(http.StatusServiceUnavailable, "the request did not finish in time: retry later"))
	default:
		a.log.Error("API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, errorf(http.StatusInternalServerError, "internal error: the server log has the details"))
	}
}

// takenField names the unique field of an ErrTaken, "" when the error
// does not say.
func takenField(err error) string {
	if ufe, ok := errors.AsType[*shardedapi.UniqueFieldError](err); ok {
		return ufe.Field
	}
	return ""
}
