package origin

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// apiError is the JSON body of every error the API answers:
// {"error": "...", "status": 400, ...details}. Details name what the client
// can fix (the offset of a JSON syntax error, the field that is taken, the
// shard that is down).
type apiError struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
	// Offset is the byte offset of a JSON syntax error in the request body.
	Offset *int64 `json:"offset,omitempty"`
	// Field is the unique field whose value another document holds.
	Field string `json:"field,omitempty"`
	// Shard is the shard that could not be reached.
	Shard string `json:"shard,omitempty"`
	// Limit is the body size limit in bytes (413).
	Limit int64 `json:"limit,omitempty"`
	// Allow lists the methods the resource accepts (405).
	Allow string `json:"allow,omitempty"`
}

// writeError answers e as JSON. Errors are never cached by a shared cache:
// a CDN holding a 503 would keep the outage visible after the shard returns.
func writeError(w http.ResponseWriter, e apiError) {
	h := w.Header()
	h.Del("ETag")
	h.Del("Last-Modified")
	h.Del("Surrogate-Key")
	h.Del("xkey")
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	b, err := json.Marshal(e)
	if err != nil {
		// apiError holds only strings and numbers; this cannot happen.
		b = []byte(`{"error":"internal error","status":500}`)
		e.Status = http.StatusInternalServerError
	}
	b = append(b, '\n')
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}

func errorf(status int, msg string) apiError { return apiError{Status: status, Error: msg} }
