package origin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// tokens holds the SHA-256 digests of the accepted bearer tokens. Comparing
// fixed-size digests with crypto/subtle, against every configured token
// without stopping at a match, keeps the time a check takes independent of
// how much of a guess is right and of which token matched; it also keeps
// the plain tokens out of memory dumps of the API.
type tokens struct {
	sums [][sha256.Size]byte
}

func newTokens(list []string) (tokens, error) {
	var t tokens
	for _, s := range list {
		if s == "" {
			return tokens{}, errors.New("bearer token list: empty token: remove it or give it a value")
		}
		if strings.ContainsAny(s, " \t\r\n") {
			return tokens{}, errors.New("bearer token list: a token contains white space: check how it was read from the file or environment")
		}
		t.sums = append(t.sums, sha256.Sum256([]byte(s)))
	}
	return t, nil
}

// authResult is why a request is or is not authorized.
type authResult int

const (
	authOK authResult = iota
	authMissing
	authInvalid
)

// check looks for "Authorization: Bearer <token>" among the configured
// tokens. With no tokens configured nothing is accepted.
func (t tokens) check(r *http.Request) authResult {
	h := r.Header.Get("Authorization")
	if h == "" {
		return authMissing
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return authInvalid
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	match := 0
	for i := range t.sums {
		match |= subtle.ConstantTimeCompare(sum[:], t.sums[i][:])
	}
	if match == 1 {
		return authOK
	}
	return authInvalid
}

// writeUnauthorized answers 401 with the challenge RFC 6750 asks for.
func writeUnauthorized(w http.ResponseWriter, res authResult) {
	if res == authMissing {
		w.Header().Set("WWW-Authenticate", `Bearer realm="assetctl"`)
		writeError(w, errorf(http.StatusUnauthorized, "this request needs a bearer token: send Authorization: Bearer <token>"))
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="assetctl", error="invalid_token"`)
	writeError(w, errorf(http.StatusUnauthorized, "the bearer token is not valid: check the token the server was configured with"))
}
