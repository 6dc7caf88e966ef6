package devserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// message is what the live-reload client receives, JSON-encoded in one
// Server-Sent Event.
type message struct {
	// Type is "hello" (state on connect), "reload", "css" or "error".
	Type string `json:"type"`
	// BuildID identifies the build now served (the last good one).
	BuildID string `json:"buildID"`
	// Errors is set for "error", and for "hello" while the build is broken.
	Errors []Message `json:"errors,omitempty"`
	// Sheets lists the stylesheets to swap for "css".
	Sheets []sheetSwap `json:"sheets,omitempty"`
}

// sheetSwap replaces the stylesheet served at From with To (URL paths).
type sheetSwap struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Integrity is the new file's Subresource Integrity value, replacing
	// the old one on the <link>; empty removes it.
	Integrity string `json:"integrity,omitempty"`
}

// hub fans messages out to the connected live-reload clients.
type hub struct {
	mu      sync.Mutex
	clients map[chan []byte]struct{}
	state   message // what a newly connected client is told
	closed  chan struct{}
	once    sync.Once
}

func newHub() *hub {
	return &hub{clients: map[chan []byte]struct{}{}, closed: make(chan struct{})}
}

// setState records the state announced to clients that connect later.
func (h *hub) setState(m message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m.Type = "hello"
	h.state = m
}

// stateJSON is the hello message a newly connected client gets.
func (h *hub) stateJSON() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	data, _ := json.Marshal(h.state)
	return data
}

// broadcast sends m to every client and returns how many there were. A
// client too slow to take it misses it; it will be told the state when it
// reconnects.
func (h *hub) broadcast(m message) int {
	data, _ := json.Marshal(m)
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		select {
		case c <- data:
		default:
		}
	}
	return len(h.clients)
}

// count is the number of connected clients.
func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// close ends every stream, so server shutdown does not wait for them.
func (h *hub) close() { h.once.Do(func() { close(h.closed) }) }

// heartbeat keeps idle streams from being cut by proxies and lets dead
// clients be noticed; it is rare enough to cost nothing while idle.
const heartbeat = 30 * time.Second

// ServeHTTP streams messages to one client as Server-Sent Events.
func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	c := make(chan []byte, 16)
	h.mu.Lock()
	hello, _ := json.Marshal(h.state)
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.clients, c)
		h.mu.Unlock()
	}()
	// retry: reconnect quickly after the server restarts.
	if _, err := fmt.Fprintf(w, "retry: 300\ndata: %s\n\n", hello); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.closed:
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
		case data := <-c:
			if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}
