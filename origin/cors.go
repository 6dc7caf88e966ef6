package origin

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CORSOptions let browsers on other origins call the API. The zero value
// turns CORS off: no Access-Control-* headers are sent, so browsers allow
// only same-origin calls.
type CORSOptions struct {
	// AllowedOrigins are the origins ("https://app.example.com", scheme and
	// host exactly as browsers send them in Origin) allowed to call the API;
	// "*" allows any origin. Default none: CORS off.
	AllowedOrigins []string
	// AllowedMethods answer preflights. Default GET, HEAD, PUT, PATCH,
	// DELETE.
	AllowedMethods []string
	// AllowedHeaders answer preflights. Default Authorization,
	// Content-Type, If-Match, If-None-Match.
	AllowedHeaders []string
	// ExposedHeaders are the response headers scripts may read. Default
	// ETag, Link, Location, Retry-After, X-Partial-Result.
	ExposedHeaders []string
	// MaxAge is how long browsers may cache a preflight's answer. Default 0:
	// the header is not sent (browsers then use 5 seconds).
	MaxAge time.Duration
}

// cors is CORSOptions compiled once.
type cors struct {
	any                       bool
	origins                   map[string]bool
	methods, headers, exposed string
	maxAge                    string
}

func newCORS(o CORSOptions) (*cors, error) {
	if len(o.AllowedOrigins) == 0 {
		return nil, nil
	}
	c := &cors{origins: map[string]bool{}}
	for _, origin := range o.AllowedOrigins {
		switch {
		case origin == "*":
			c.any = true
		case origin == "" || strings.HasSuffix(origin, "/") || !strings.Contains(origin, "://"):
			return nil, errors.New("CORS allowed origin " + strconv.Quote(origin) + ": want scheme://host[:port] without a path, or *")
		default:
			c.origins[origin] = true
		}
	}
	c.methods = strings.Join(orDefault(o.AllowedMethods, []string{"GET", "HEAD", "PUT", "PATCH", "DELETE"}), ", ")
	c.headers = strings.Join(orDefault(o.AllowedHeaders, []string{"Authorization", "Content-Type", "If-Match", "If-None-Match"}), ", ")
	c.exposed = strings.Join(orDefault(o.ExposedHeaders, []string{"ETag", "Link", "Location", "Retry-After", "X-Partial-Result"}), ", ")
	if o.MaxAge > 0 {
		c.maxAge = strconv.FormatInt(seconds(o.MaxAge), 10)
	}
	return c, nil
}

func orDefault(v, def []string) []string {
	if len(v) == 0 {
		return def
	}
	return slices.Clone(v)
}

func (c *cors) allowed(origin string) bool { return c.any || c.origins[origin] }

// preflight answers an OPTIONS preflight and reports whether r was one.
func (c *cors) preflight(w http.ResponseWriter, r *http.Request) bool {
	if c == nil || r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	if c.allowed(origin) {
		h.Set("Access-Control-Allow-Origin", c.originValue(origin))
		h.Set("Access-Control-Allow-Methods", c.methods)
		h.Set("Access-Control-Allow-Headers", c.headers)
		if c.maxAge != "" {
			h.Set("Access-Control-Max-Age", c.maxAge)
		}
	}
	// An origin that is not allowed gets no Allow-* headers, which is how
	// a browser learns it must not send the request.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// actual adds the CORS headers of a non-preflight response.
func (c *cors) actual(w http.ResponseWriter, r *http.Request) {
	if c == nil {
		return
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || !c.allowed(origin) {
		return
	}
	h.Set("Access-Control-Allow-Origin", c.originValue(origin))
	h.Set("Access-Control-Expose-Headers", c.exposed)
}

// originValue is "*" when any origin is allowed (one cached answer fits
// every origin; the API does not use cookies, so no request is
// credentialed), else the request's origin, with Vary: Origin.
func (c *cors) originValue(origin string) string {
	if c.any {
		return "*"
	}
	return origin
}
