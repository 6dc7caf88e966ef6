package origin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/assetctl/assetctl/shardedapi"
)

// PageDocuments is what Pages needs from the document store;
// *shardedapi.DocumentStore implements it.
type PageDocuments interface {
	Get(ctx context.Context, collection, id string) (shardedapi.Document, error)
	List(ctx context.Context, collection string, limit int, cursor string, opts shardedapi.GatherOptions) (shardedapi.DocumentPage, error)
}

var _ PageDocuments = (*shardedapi.DocumentStore)(nil)

// PageRoute maps a URL path pattern to a template and the documents the
// page shows.
type PageRoute struct {
	// Pattern is a net/http ServeMux path pattern without method or host
	// ("/products/{id}", "/{$}"); the route answers GET and HEAD.
	Pattern string
	// Template is the template's file name ("product.html").
	Template string
	// Title is PageData.Title; a shown document's string "name" field
	// replaces it. Default "".
	Title string
	// Document is the collection of the one document the page shows, whose
	// ID is the Param wildcard of Pattern. Default "": no document.
	Document string
	// Param is the wildcard holding the document ID. Default "id".
	Param string
	// List is the collection whose newest Limit documents the page shows.
	// Default "": no list.
	List string
	// Limit is the list's size. Default 20.
	Limit int
	// Cache is the page's Cache-Control. The zero value is per-user
	// ("private, no-store").
	Cache CachePolicy
}

// PagesOptions configure Pages. Routes is required; every other field's
// zero value is the default.
type PagesOptions struct {
	Routes []PageRoute
	// NotFound is the template rendered, with status 404, for a missing
	// document and for a path no route matches. Default "404.html"; if the
	// templates lack it, a plain-text 404.
	NotFound string
	// Unavailable is the template rendered, with status 503 and
	// Retry-After, when the shard holding a page's document is down.
	// Default "503.html"; if the templates lack it, a plain-text 503.
	Unavailable string
	// RetryAfter is the Retry-After of a 503. Default 5s.
	RetryAfter time.Duration
	// NotFoundCache is the Cache-Control of a 404 for a path no route
	// matches. Default: shared for one minute.
	NotFoundCache *CachePolicy
	// Gather bounds list pages' scatter-gather queries.
	Gather shardedapi.GatherOptions
	// Logger receives render and data errors. Default: discarded.
	Logger *slog.Logger
}

// PageData is what a page's template is executed with.
type PageData struct {
	// Title is the route's title, or the shown document's "name".
	Title string
	// Path is the request's URL path.
	Path string
	// Doc is the document of a Document route (nil on other pages and on
	// the 404 and 503 pages).
	Doc *PageDocument
	// Docs are the documents of a List route, newest first.
	Docs []PageDocument
	// Partial is true when some shards did not answer a List route's query,
	// so Docs lacks their documents.
	Partial bool
	// BuildID names the build whose assets the page links to.
	BuildID string
}

// PageDocument is a document as templates see it: its JSON fields under
// Data ({{.Data.name}}), numbers kept as written.
type PageDocument struct {
	Collection string
	ID         string
	Rev        int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Data       map[string]any
}

// Pages renders the site's dynamic pages: each route's documents are read
// through the document store (and its cache), the template is rendered
// with the request's asset snapshot (see Live.Middleware) and CSP nonce,
// and the response carries the route's Cache-Control, a cache tag per
// document shown (and the collection's tag on list pages), and a Link
// header (103 Early Hints on HTTP/2) preloading the template's entries.
type Pages struct {
	docs      PageDocuments
	opts      PagesOptions
	log       *slog.Logger
	mux       *http.ServeMux
	templates atomic.Pointer[Templates]
	bufs      sync.Pool

	// Rendered pages by what they were rendered from, with placeholder
	// in place of the CSP nonce: a page is a pure function of its
	// template, build and documents, so a hot page is rendered once per
	// document revision and each request only writes its own nonce in.
	placeholder string
	mu          sync.Mutex
	rendered    map[renderKey]*renderedPage
}

// renderKey identifies a rendered page. docs is the shown documents'
// collection/id@rev list, so any write (a new revision) misses.
type renderKey struct {
	t      *Templates
	a      *Assets
	name   string
	path   string
	status int
	docs   string
}

type renderedPage struct {
	body []byte
	tags []string // the Surrogate-Key and xkey value, nil for none
}

// maxRendered bounds the rendered-page cache; when full it starts over
// (cheap, and a hot page is back after one render).
const maxRendered = 2048

// ErrMissingTemplate means a route names a template the directory lacks.
var ErrMissingTemplate = errors.New("template not found")

// NewPages checks the routes against t and makes the pages handler.
func NewPages(t *Templates, docs PageDocuments, o PagesOptions) (*Pages, error) {
	if o.NotFound == "" {
		o.NotFound = "404.html"
	}
	if o.Unavailable == "" {
		o.Unavailable = "503.html"
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 5 * time.Second
	}
	if o.NotFoundCache == nil {
		o.NotFoundCache = &CachePolicy{SMaxAge: time.Minute}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pages{docs: docs, opts: o, log: o.Logger, mux: http.NewServeMux(), rendered: map[renderKey]*renderedPage{}}
	p.bufs.New = func() any { return new(bytes.Buffer) }
	var tok [12]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, fmt.Errorf("new pages: %w", err)
	}
	// Letters and digits only: a valid nonce, and never in escaped output
	// by accident.
	p.placeholder = "pgnonce" + hex.EncodeToString(tok[:])
	if err := p.SetTemplates(t); err != nil {
		return nil, err
	}
	for i, rt := range o.Routes {
		if rt.Param == "" {
			o.Routes[i].Param = "id"
		}
		if rt.Limit <= 0 {
			o.Routes[i].Limit = 20
		}
		if rt.Document != "" && rt.List != "" {
			return nil, fmt.Errorf("page route %q: shows a document and a list: pick one", rt.Pattern)
		}
		if err := p.handle(o.Routes[i]); err != nil {
			return nil, err
		}
	}
	p.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.notFound(w, r, *o.NotFoundCache, nil)
	})
	return p, nil
}

// handle registers one route; ServeMux panics on a bad or conflicting
// pattern, which is turned into an error here.
func (p *Pages) handle(rt PageRoute) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("page route %q: %v", rt.Pattern, r)
		}
	}()
	p.mux.HandleFunc("GET "+rt.Pattern, func(w http.ResponseWriter, r *http.Request) { p.serve(w, r, rt) })
	return nil
}

// SetTemplates swaps in a new template set (assetctl serve --dev reloads
// them on every change) after checking it has every route's template.
func (p *Pages) SetTemplates(t *Templates) error {
	for _, rt := range p.opts.Routes {
		if !t.Has(rt.Template) {
			return fmt.Errorf("page route %q: %w: %q is not in the templates directory", rt.Pattern, ErrMissingTemplate, rt.Template)
		}
	}
	p.templates.Store(t)
	return nil
}

// ServeHTTP answers a page request.
func (p *Pages) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

func (p *Pages) serve(w http.ResponseWriter, r *http.Request, rt PageRoute) {
	t, a := p.templates.Load(), AssetsFrom(r.Context())
	if a == nil {
		p.log.Error("render page: no assets in the request context: wrap Pages in Live.Middleware", "path", r.URL.Path)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	// The hints go out before the documents are read, so the browser
	// fetches the CSS and scripts while the database answers.
	link := a.LinkHeader(t.Entries(rt.Template))
	if link != "" {
		w.Header().Set("Link", link)
		EarlyHints(w, r, link)
	}
	var (
		key   strings.Builder
		doc   shardedapi.Document
		list  shardedapi.DocumentPage
		cache = rt.Cache.String()
	)
	switch {
	case rt.Document != "":
		id := r.PathValue(rt.Param)
		var err error
		doc, err = p.docs.Get(r.Context(), rt.Document, id)
		if err != nil {
			if errors.Is(err, shardedapi.ErrNotFound) || errors.Is(err, shardedapi.ErrInvalidKey) || errors.Is(err, shardedapi.ErrInvalidValue) {
				// Tagged like the document, so creating it purges the 404.
				p.notFound(w, r, rt.Cache, []string{DocumentTag(rt.Document, id)})
				return
			}
			p.dataError(w, r, err)
			return
		}
		writeDocKey(&key, doc)
	case rt.List != "":
		var err error
		list, err = p.docs.List(r.Context(), rt.List, rt.Limit, "", p.opts.Gather)
		if err != nil {
			p.dataError(w, r, err)
			return
		}
		for _, d := range list.Documents {
			writeDocKey(&key, d)
		}
		if list.Partial {
			// A page missing a shard's documents must not outlive the
			// outage at the edge.
			cache = "no-store"
			w.Header().Set("X-Partial-Result", "true")
			key.WriteString("partial")
		}
	}
	data := func() (*PageData, error) {
		data := &PageData{Title: rt.Title, Path: r.URL.Path, BuildID: a.BuildID(), Partial: list.Partial}
		if rt.Document != "" {
			pd, err := pageDocument(doc)
			if err != nil {
				return nil, err
			}
			data.Doc = &pd
			if name, ok := pd.Data["name"].(string); ok && name != "" {
				data.Title = name
			}
		}
		if rt.List != "" {
			data.Docs = make([]PageDocument, 0, len(list.Documents))
			for _, d := range list.Documents {
				pd, err := pageDocument(d)
				if err != nil {
					return nil, err
				}
				data.Docs = append(data.Docs, pd)
			}
		}
		return data, nil
	}
	// Tags name what the page was built from; hashed once per rendering.
	tags := func() []string {
		if rt.Document != "" {
			return []string{DocumentTag(doc.Collection, doc.ID)}
		}
		if rt.List == "" {
			return nil
		}
		tags := []string{CollectionTag(rt.List)}
		for _, d := range list.Documents {
			tags = append(tags, DocumentTag(d.Collection, d.ID))
		}
		return tags
	}
	p.renderCached(w, r, t, a, rt.Template, key.String(), data, http.StatusOK, cache, tags)
}

// writeDocKey adds a document's identity and revision to a render key.
func writeDocKey(b *strings.Builder, d shardedapi.Document) {
	b.WriteString(d.Collection)
	b.WriteByte('/')
	b.WriteString(d.ID)
	b.WriteByte('@')
	b.WriteString(strconv.FormatInt(d.Rev, 10))
	b.WriteByte(' ')
}

// dataError answers a failed read: 503 with Retry-After when the shard is
// down (only that shard's documents fail), 500 otherwise.
func (p *Pages) dataError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, shardedapi.ErrShardUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		p.log.Warn("page data unavailable", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", strconv.FormatInt(int64((p.opts.RetryAfter+time.Second-1)/time.Second), 10))
		p.fallback(w, r, p.opts.Unavailable, http.StatusServiceUnavailable, "no-store", nil)
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	p.log.Error("page data", "path", r.URL.Path, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

func (p *Pages) notFound(w http.ResponseWriter, r *http.Request, cache CachePolicy, tags []string) {
	p.fallback(w, r, p.opts.NotFound, http.StatusNotFound, cache.String(), tags)
}

// fallback renders an error page's template, or plain text without one.
func (p *Pages) fallback(w http.ResponseWriter, r *http.Request, name string, status int, cache string, tags []string) {
	t, a := p.templates.Load(), AssetsFrom(r.Context())
	if a == nil || !t.Has(name) {
		w.Header().Set("Cache-Control", cache)
		http.Error(w, http.StatusText(status), status)
		return
	}
	data := func() (*PageData, error) { return &PageData{Path: r.URL.Path, BuildID: a.BuildID()}, nil }
	p.renderCached(w, r, t, a, name, "", data, status, cache, func() []string { return tags })
}

// renderCached answers with the page rendered from key's inputs, rendering
// it (into a buffer first, so a failing template is a clean 500 rather
// than half a page with status 200) only on the first request for them.
func (p *Pages) renderCached(w http.ResponseWriter, r *http.Request, t *Templates, a *Assets, name, docs string, data func() (*PageData, error), status int, cache string, tags func() []string) {
	k := renderKey{t: t, a: a, name: name, path: r.URL.Path, status: status, docs: docs}
	p.mu.Lock()
	page := p.rendered[k]
	p.mu.Unlock()
	if page == nil {
		d, err := data()
		if err != nil {
			p.dataError(w, r, err)
			return
		}
		buf := p.bufs.Get().(*bytes.Buffer)
		buf.Reset()
		err = t.Render(buf, name, d, RenderContext{Assets: a, Nonce: p.placeholder})
		if err != nil {
			p.bufs.Put(buf)
			p.log.Error("render page", "template", name, "path", r.URL.Path, "err", err)
			w.Header().Del("Link")
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		page = &renderedPage{body: bytes.Clone(buf.Bytes())}
		p.bufs.Put(buf)
		th := http.Header{}
		SetCacheTags(th, tags()...)
		page.tags = th["Xkey"]
		p.mu.Lock()
		if len(p.rendered) >= maxRendered {
			clear(p.rendered)
		}
		p.rendered[k] = page
		p.mu.Unlock()
	}
	body := page.body
	if nonce := Nonce(r.Context()); nonce != "" || bytes.Contains(body, []byte(p.placeholder)) {
		out := p.bufs.Get().(*bytes.Buffer)
		defer p.bufs.Put(out)
		out.Reset()
		replaceAll(out, body, []byte(p.placeholder), []byte(nonce))
		body = out.Bytes()
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", cache)
	if page.tags != nil && cache != "no-store" && cache != "private, no-store" {
		h["Surrogate-Key"] = page.tags
		h["Xkey"] = page.tags
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// replaceAll writes src to out with every old replaced by new.
func replaceAll(out *bytes.Buffer, src, old, new []byte) {
	for {
		i := bytes.Index(src, old)
		if i < 0 {
			out.Write(src)
			return
		}
		out.Write(src[:i])
		out.Write(new)
		src = src[i+len(old):]
	}
}

func pageDocument(d shardedapi.Document) (PageDocument, error) {
	pd := PageDocument{Collection: d.Collection, ID: d.ID, Rev: d.Rev, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	dec := json.NewDecoder(bytes.NewReader(d.Body))
	dec.UseNumber() // 12345678 stays 12345678 in a template, not 1.2345678e+07
	if err := dec.Decode(&pd.Data); err != nil {
		return PageDocument{}, fmt.Errorf("decode document %s/%s: %w", d.Collection, d.ID, err)
	}
	return pd, nil
}
