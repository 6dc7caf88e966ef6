package bundler

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// rewriteWebManifest rewrites the image URLs of a web app manifest
// (icons[].src, screenshots[].src, shortcuts[].icons[].src), copying every
// other byte as it was. URLs resolve against the manifest's own location.
func rewriteWebManifest(w *bytes.Buffer, src []byte, res resolver) error {
	dec := json.NewDecoder(bytes.NewReader(src))
	// stack holds, per open container, the key it sits under ("" for the
	// root) and whether it is an array.
	type frame struct {
		key   string
		array bool
	}
	var stack []frame
	var key string // the last object key read, awaiting its value
	expectKey := false
	at := 0
	for {
		before := int(dec.InputOffset())
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			w.Write(src[at:])
			return nil
		}
		if err != nil {
			return &BuildError{Messages: []Message{{Line: lineAt(src, before), Text: "invalid web manifest JSON: " + err.Error()}}}
		}
		end := int(dec.InputOffset())
		inObject := len(stack) > 0 && !stack[len(stack)-1].array
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				k := key
				if len(stack) > 0 && stack[len(stack)-1].array {
					k = stack[len(stack)-1].key // array elements inherit the array's key
				}
				stack = append(stack, frame{key: k, array: t == '['})
				expectKey = t == '{'
			case '}', ']':
				stack = stack[:len(stack)-1]
				expectKey = len(stack) > 0 && !stack[len(stack)-1].array
			}
			key = ""
			continue
		case string:
			if inObject && expectKey {
				key = t
				expectKey = false
				continue
			}
			// A string value: rewrite it if it is an image's src.
			if inObject && key == "src" && len(stack) >= 2 {
				parent := stack[len(stack)-1].key
				if parent == "icons" || parent == "screenshots" {
					q := before + bytes.IndexByte(src[before:end], '"')
					r, err := res.resolve(ref{URL: t, Line: lineAt(src, q), Kind: refAsset})
					if err != nil {
						return err
					}
					if r.URL != "" && q >= at {
						w.Write(src[at:q])
						quoted, _ := json.Marshal(r.URL)
						w.Write(quoted)
						at = end
					}
				}
			}
		}
		if inObject {
			expectKey = true
			key = ""
		}
	}
}

// lineAt is the 1-based line of byte offset off in src.
func lineAt(src []byte, off int) int {
	if off > len(src) {
		off = len(src)
	}
	return 1 + bytes.Count(src[:off], []byte{'\n'})
}
