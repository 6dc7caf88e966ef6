package origin

import (
	"errors"
	"html"
	"html/template"
	"strings"
	"text/template/parse"
)

// Folding constant asset calls into text.
//
// In a snapshot's clone every {{asset "css/site.css"}} yields the same
// bytes on every request, yet html/template would call it (and two or
// three escaping functions after it) through reflection each time: that
// was most of a page render. So once a clone is escaped, each action
// whose value is constant for the snapshot (asset, integrity, entry with
// constant names; buildID; nonce, whose placeholder Render replaces) and
// whose escaping chain is one we can reproduce exactly is replaced by a
// text node holding the escaped value. Anything else (computed names,
// JavaScript or CSS contexts, unquoted attributes) keeps the normal path.

// errProbe stops the probe execution at its first write.
var errProbe = errors.New("probe")

type probeWriter struct{}

func (probeWriter) Write([]byte) (int, error) { return 0, errProbe }

// escapeNow makes html/template escape t (it escapes on first Execute)
// without rendering anything: the execution stops at its first write.
func escapeNow(t *template.Template) {
	_ = t.Execute(probeWriter{}, nil)
}

// foldSet folds every escaped constant action in the templates of set.
func (t *Templates) foldSet(set *template.Template, s *snapshot) {
	for _, x := range set.Templates() {
		if x.Tree != nil && x.Tree.Root != nil {
			t.foldList(x.Tree.Root, s)
		}
	}
}

func (t *Templates) foldList(l *parse.ListNode, s *snapshot) {
	if l == nil {
		return
	}
	for i, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.ActionNode:
			if text, ok := t.foldAction(n, s); ok {
				l.Nodes[i] = &parse.TextNode{NodeType: parse.NodeText, Pos: n.Pos, Text: []byte(text)}
			}
		case *parse.IfNode:
			t.foldList(n.List, s)
			t.foldList(n.ElseList, s)
		case *parse.RangeNode:
			t.foldList(n.List, s)
			t.foldList(n.ElseList, s)
		case *parse.WithNode:
			t.foldList(n.List, s)
			t.foldList(n.ElseList, s)
		case *parse.ListNode:
			t.foldList(n, s)
		}
	}
	// Runs of text (a folded tag between constant markup) become one
	// node: one write instead of several.
	out := l.Nodes[:0]
	for _, n := range l.Nodes {
		if tn, ok := n.(*parse.TextNode); ok && len(out) > 0 {
			if prev, ok := out[len(out)-1].(*parse.TextNode); ok {
				out[len(out)-1] = &parse.TextNode{NodeType: parse.NodeText, Pos: prev.Pos, Text: append(append([]byte(nil), prev.Text...), tn.Text...)}
				continue
			}
		}
		out = append(out, n)
	}
	l.Nodes = out
}

// foldAction returns the bytes an escaped action always writes for
// snapshot s, when it can tell them exactly.
func (t *Templates) foldAction(a *parse.ActionNode, s *snapshot) (string, bool) {
	p := a.Pipe
	if p == nil || len(p.Decl) > 0 || len(p.Cmds) == 0 {
		return "", false
	}
	cmds := p.Cmds
	// The call: fn "name" [options], or "name" | fn.
	var fn, name string
	var opts []string
	first := cmds[0].Args
	id, ok := first[0].(*parse.IdentifierNode)
	switch {
	case ok && (id.Ident == "buildID" || id.Ident == "nonce") && len(first) == 1:
		fn, cmds = id.Ident, cmds[1:]
	case ok && resolvingFuncs[id.Ident] && len(first) >= 2:
		fn, cmds = id.Ident, cmds[1:]
		for j, arg := range first[1:] {
			str, isStr := arg.(*parse.StringNode)
			if !isStr {
				return "", false
			}
			if j == 0 {
				name = str.Text
			} else {
				opts = append(opts, str.Text)
			}
		}
	case !ok && len(first) == 1 && len(cmds) >= 2 && len(cmds[1].Args) == 1:
		str, isStr := first[0].(*parse.StringNode)
		id2, isID := cmds[1].Args[0].(*parse.IdentifierNode)
		if !isStr || !isID || !resolvingFuncs[id2.Ident] {
			return "", false
		}
		fn, name, cmds = id2.Ident, str.Text, cmds[2:]
	default:
		return "", false
	}
	// What follows must be only html/template's escapers.
	chain := make([]string, 0, len(cmds))
	for _, c := range cmds {
		if len(c.Args) != 1 {
			return "", false
		}
		e, ok := c.Args[0].(*parse.IdentifierNode)
		if !ok || !strings.HasPrefix(e.Ident, "_html_template_") {
			return "", false
		}
		chain = append(chain, strings.TrimPrefix(e.Ident, "_html_template_"))
	}
	if len(chain) == 0 {
		return "", false // not escaped (yet): leave it to html/template
	}
	var v string
	var isHTML bool
	var err error
	switch fn {
	case "asset":
		v, err = s.assets.URL(name)
	case "integrity":
		v, err = s.assets.Integrity(name)
	case "buildID":
		v = s.assets.BuildID()
	case "nonce":
		v = t.token
	case "entry":
		var h template.HTML
		h, err = t.entryHTML(s, name, opts)
		v, isHTML = string(h), true
	}
	if err != nil {
		return "", false // the error belongs to the request that renders it
	}
	return foldEscape(v, isHTML, strings.Join(chain, "|"))
}

// foldEscape reproduces the escaping chains that are exact for our
// values: quoted attribute values, HTML text, and URL attributes.
func foldEscape(v string, isHTML bool, chain string) (string, bool) {
	if isHTML {
		return v, chain == "htmlescaper"
	}
	if plainToken(v) {
		switch chain {
		case "htmlescaper", "attrescaper", "rcdataescaper", "jsstrescaper", "nospaceescaper",
			"urlescaper|attrescaper", "urlnormalizer|attrescaper", "urlfilter|urlnormalizer|attrescaper":
			return v, true
		}
		return "", false
	}
	switch chain {
	case "htmlescaper", "attrescaper", "rcdataescaper":
		return html.EscapeString(v), true
	case "urlfilter|urlnormalizer|attrescaper", "urlnormalizer|attrescaper":
		if !plainURL(v) {
			return "", false
		}
		return html.EscapeString(v), true
	}
	return "", false
}

// plainToken: letters, digits and ._- are left alone by every escaper
// listed for them.
func plainToken(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// plainURL: an http(s) or root-relative URL of printable ASCII without
// quotes, brackets or spaces, which html/template's URL filter passes and
// its normalizer leaves unchanged (percent escapes included).
func plainURL(v string) bool {
	if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "/") {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"'<>\\`{}|^[]", c) >= 0 {
			return false
		}
		if c == '%' && (i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2])) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
