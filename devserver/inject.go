package devserver

import (
	"bytes"
	"html"
	"io"

	nethtml "golang.org/x/net/html"
)

// clientPath is where the live-reload script is served; eventsPath is its
// Server-Sent Events stream. Both live under a prefix no site uses.
const (
	reservedPrefix = "/__assetctl/"
	clientPath     = reservedPrefix + "client.js"
	eventsPath     = reservedPrefix + "events"
	statePath      = reservedPrefix + "state"
)

// injectClient returns page with the live-reload script tag inserted before
// </head> (else before </body>, else at the end), leaving every other byte
// as it was. buildID is the build the page came from, so the client can
// tell that it missed a rebuild.
func injectClient(page []byte, buildID string) []byte {
	tag := []byte(`<script src="` + clientPath + `" data-build="` + html.EscapeString(buildID) + `" defer></script>`)
	at := insertionPoint(page)
	out := make([]byte, 0, len(page)+len(tag))
	out = append(out, page[:at]...)
	out = append(out, tag...)
	return append(out, page[at:]...)
}

// insertionPoint finds the byte offset of </head>, else of </body>, else
// the end of page, using the HTML tokenizer so markup inside comments,
// scripts or attribute values is never mistaken for a tag.
func insertionPoint(page []byte) int {
	z := nethtml.NewTokenizer(bytes.NewReader(page))
	off, body := 0, -1
	for {
		tt := z.Next()
		if tt == nethtml.ErrorToken {
			if z.Err() != io.EOF {
				return len(page)
			}
			break
		}
		raw := len(z.Raw())
		if tt == nethtml.EndTagToken {
			name, _ := z.TagName()
			switch string(name) {
			case "head":
				return off
			case "body":
				if body < 0 {
					body = off
				}
			}
		}
		off += raw
	}
	if body >= 0 {
		return body
	}
	return len(page)
}
