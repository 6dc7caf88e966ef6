package bundler

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Message is one problem found in the site, located as precisely as the
// source allows, so an editor or the dev server's overlay can point at it.
type Message struct {
	// File is relative to the site root, with forward slashes; empty when
	// the problem has no file (a config entry point, say).
	File string
	// Line is 1-based; 0 when unknown.
	Line int
	// Column is 1-based, in bytes; 0 when unknown.
	Column int
	// Text says what is wrong, e.g. `missing asset "img/x.png"`.
	Text string
}

// String formats the message as file:line:col: text, leaving out the
// parts that are unknown.
func (m Message) String() string {
	var b strings.Builder
	if m.File != "" {
		b.WriteString(m.File)
		if m.Line > 0 {
			fmt.Fprintf(&b, ":%d", m.Line)
			if m.Column > 0 {
				fmt.Fprintf(&b, ":%d", m.Column)
			}
		}
		b.WriteString(": ")
	}
	b.WriteString(m.Text)
	return b.String()
}

// BuildError is a build that failed because of its input: esbuild errors,
// missing assets, references or symlinks that escape the site root,
// reference cycles. Callers use errors.As to show each message at its
// place.
type BuildError struct {
	Messages []Message
}

// Error lists every message, one per line.
func (e *BuildError) Error() string {
	lines := make([]string, len(e.Messages))
	for i, m := range e.Messages {
		lines[i] = m.String()
	}
	return strings.Join(lines, "\n")
}

// sortMessages orders messages by file, line and column so errors read the
// same on every run.
func sortMessages(ms []Message) {
	sort.SliceStable(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Text < b.Text
	})
}

// ErrNotBuildOutput is returned by Build when OutDir exists, is not empty
// and holds no manifest.json: assetctl replaces whole output directories and
// refuses to replace one it did not write.
var ErrNotBuildOutput = errors.New("output directory exists and is not an assetctl build output")

// ErrClosed is returned by Build after Close.
var ErrClosed = errors.New("builder is closed")
