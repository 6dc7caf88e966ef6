package origin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// reqState is the per-request state the server's middleware shares with
// handlers through the context: one allocation and one WithContext per
// request for all of it.
type reqState struct {
	nonce string // made on the first Nonce call
	route string
	// headersDone is set once the security headers are in the response
	// header map (at its first WriteHeader or Write).
	headersDone bool
}

type reqStateKey struct{}

// stateCtx is the request's context with its reqState: what
// context.WithValue(parent, reqStateKey{}, st) would make, but as a value
// that lives inside the server's per-request recorder, so it costs no
// allocation of its own.
type stateCtx struct {
	context.Context
	st *reqState
}

func (c *stateCtx) Value(key any) any {
	if _, ok := key.(reqStateKey); ok {
		return c.st
	}
	return c.Context.Value(key)
}

func stateFrom(ctx context.Context) *reqState {
	s, _ := ctx.Value(reqStateKey{}).(*reqState)
	return s
}

// Nonce is the request's CSP nonce, which the Server's security headers
// allow in script-src and style-src: put it on every inline or external
// <script> and <style>/<link rel=stylesheet> tag the page writes. Call it
// before the response's headers are written (before WriteHeader or the
// first Write): the nonce is made on the first call, and responses whose
// handler never asked for one (the JSON API) get a CSP without a nonce,
// which saves the random bytes. It is "" outside a Server's handler chain,
// and after the headers were written without a nonce (a tag carrying it
// would be blocked, never allowed).
func Nonce(ctx context.Context) string {
	s := stateFrom(ctx)
	if s == nil {
		return ""
	}
	if s.nonce == "" && !s.headersDone {
		s.nonce = newNonce()
	}
	return s.nonce
}

// SetRoute names the route that handles the request (a pattern such as
// "/products/{id}", never the raw path) for the Server's metrics and
// access log. Without it the label is the pattern of the innermost
// http.ServeMux that routed the request, or "other".
func SetRoute(ctx context.Context, pattern string) { setRoute(ctx, pattern) }

func setRoute(ctx context.Context, route string) {
	if s := stateFrom(ctx); s != nil {
		s.route = route
	}
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return base64.RawStdEncoding.EncodeToString(b[:])
}

// securityHeaders are the headers every response gets, compiled once.
type securityHeaders struct {
	cspBefore, cspMid, cspAfter string // the CSP around its two nonces
	cspNoNonce                  []string
	hsts                        []string
}

func newSecurityHeaders(cdnURL string, hstsMaxAge time.Duration) (*securityHeaders, error) {
	cdn := ""
	if cdnURL != "" {
		u, err := url.Parse(cdnURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("CDN URL %q: want an absolute http(s) URL such as https://cdn.example.com/site/", cdnURL)
		}
		// CSP sources name an origin; a path would limit the source to
		// that path, which is what we want for the site's assets.
		cdn = " " + u.Scheme + "://" + u.Host + u.EscapedPath()
	}
	s := &securityHeaders{
		cspBefore: "default-src 'self'; script-src 'self'" + cdn + " 'nonce-",
		cspMid:    "'; style-src 'self'" + cdn + " 'nonce-",
		cspAfter: "'; img-src 'self' data:" + cdn + "; font-src 'self'" + cdn + "; connect-src 'self'" + cdn +
			"; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
	}
	s.cspNoNonce = []string{strings.Replace(strings.Replace(s.cspBefore, " 'nonce-", "", 1)+
		strings.Replace(s.cspMid, "'; style-src", "; style-src", 1), " 'nonce-", "", 1) +
		strings.TrimPrefix(s.cspAfter, "'")}
	if hstsMaxAge >= 0 {
		if hstsMaxAge == 0 {
			hstsMaxAge = 2 * 365 * 24 * time.Hour
		}
		s.hsts = []string{"max-age=" + strconv.FormatInt(seconds(hstsMaxAge), 10) + "; includeSubDomains"}
	}
	return s, nil
}

var (
	jsonCSP        = []string{"default-src 'none'; frame-ancestors 'none'"}
	nosniff        = []string{"nosniff"}
	referrerPolicy = []string{"strict-origin-when-cross-origin"}
)

// set writes the security headers of a response to r: a CSP that allows
// the site itself, the CDN origin and scripts/styles carrying this
// request's nonce; nosniff; a referrer policy that keeps paths on this
// site; HSTS only over TLS (browsers ignore it over HTTP, and sending it
// from a plain-HTTP dev server would pin a developer's localhost).
func (s *securityHeaders) set(h http.Header, r *http.Request, nonce string) {
	if ct := h["Content-Type"]; nonce == "" && len(ct) == 1 && ct[0] == "application/json" {
		// JSON is data, never a document: nothing may load from it and
		// nothing may frame it (OWASP's REST advice), in fewer bytes; and
		// as it makes no requests, a referrer policy has nothing to
		// govern. Each header costs on the hot path: net/http copies the
		// header map of every response.
		h["Content-Security-Policy"] = jsonCSP
		h["X-Content-Type-Options"] = nosniff
		s.setHSTS(h, r)
		return
	}
	if nonce == "" {
		h["Content-Security-Policy"] = s.cspNoNonce
	} else {
		h["Content-Security-Policy"] = []string{s.cspBefore + nonce + s.cspMid + nonce + s.cspAfter}
	}
	h["X-Content-Type-Options"] = nosniff
	h["Referrer-Policy"] = referrerPolicy
	s.setHSTS(h, r)
}

func (s *securityHeaders) setHSTS(h http.Header, r *http.Request) {
	if r.TLS != nil && s.hsts != nil {
		h["Strict-Transport-Security"] = s.hsts
	}
}
