package bundler

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/tdewolff/parse/v2"
	"github.com/tdewolff/parse/v2/css"
)

// rewriteCSS copies a stylesheet (or a style attribute's declarations) to
// w token by token with the CSS lexer, replacing each local reference:
// url(), @import "…", the strings of image-set() and src(), and a
// sourceMappingURL comment. Every other byte is copied unchanged. line is
// the line of the first byte within the file that holds it.
func rewriteCSS(w *bytes.Buffer, src []byte, line int, res resolver) error {
	l := css.NewLexer(parse.NewInputBytes(src))
	var funcs []string // open functions, lower case; "" for a plain (
	afterImport := false
	pos := 0
	for {
		tt, data := l.Next()
		if tt == css.ErrorToken {
			// The lexer stops only at the end of input; copy anything it
			// did not hand out so no byte is lost.
			if pos < len(src) {
				w.Write(src[pos:])
			}
			return nil
		}
		pos += len(data)
		startLine := line
		line += bytes.Count(data, []byte{'\n'})
		switch tt {
		case css.URLToken:
			out, err := rewriteURLToken(data, startLine, res)
			if err != nil {
				return err
			}
			w.Write(out)
		case css.StringToken:
			top := ""
			if len(funcs) > 0 {
				top = funcs[len(funcs)-1]
			}
			if afterImport || top == "image-set" || top == "-webkit-image-set" || top == "src" {
				out, err := rewriteCSSString(data, startLine, refAsset, res)
				if err != nil {
					return err
				}
				w.Write(out)
			} else {
				w.Write(data)
			}
		case css.CommentToken:
			out, err := rewriteMapComment(data, startLine, res)
			if err != nil {
				return err
			}
			w.Write(out)
		case css.FunctionToken:
			funcs = append(funcs, strings.ToLower(string(data[:len(data)-1])))
			w.Write(data)
		case css.LeftParenthesisToken:
			funcs = append(funcs, "")
			w.Write(data)
		case css.RightParenthesisToken:
			if len(funcs) > 0 {
				funcs = funcs[:len(funcs)-1]
			}
			w.Write(data)
		default:
			w.Write(data)
		}
		switch tt {
		case css.WhitespaceToken, css.CommentToken:
		case css.AtKeywordToken:
			afterImport = strings.EqualFold(string(data), "@import")
		default:
			afterImport = false
		}
	}
}

// rewriteURLToken rewrites the URL inside url(…), keeping the function
// name, the whitespace and the quoting as written.
func rewriteURLToken(data []byte, line int, res resolver) ([]byte, error) {
	open := bytes.IndexByte(data, '(')
	if open < 0 || !bytes.HasSuffix(data, []byte(")")) {
		return data, nil // unterminated at end of input: leave it
	}
	inner := data[open+1 : len(data)-1]
	lead := len(inner) - len(bytes.TrimLeft(inner, " \t\n\r\f"))
	trail := len(inner) - len(bytes.TrimRight(inner, " \t\n\r\f"))
	if lead == len(inner) {
		return data, nil
	}
	val := inner[lead : len(inner)-trail]
	if val[0] == '"' || val[0] == '\'' {
		out, err := rewriteCSSString(val, line, refAsset, res)
		if err != nil {
			return nil, err
		}
		return concat(data[:open+1+lead], out, inner[len(inner)-trail:], []byte(")")), nil
	}
	r, err := res.resolve(ref{URL: cssUnescape(string(val)), Line: line, Kind: refAsset})
	if err != nil || r.URL == "" {
		return data, err
	}
	var nv []byte
	if strings.ContainsAny(r.URL, "()\"' \t\n\\") {
		nv = []byte(cssQuote(r.URL, '"'))
	} else {
		nv = []byte(r.URL)
	}
	return concat(data[:open+1+lead], nv, inner[len(inner)-trail:], []byte(")")), nil
}

// rewriteCSSString rewrites a quoted CSS string holding a URL.
func rewriteCSSString(data []byte, line int, kind refKind, res resolver) ([]byte, error) {
	if len(data) < 2 || data[len(data)-1] != data[0] {
		return data, nil
	}
	q := data[0]
	r, err := res.resolve(ref{URL: cssUnescape(string(data[1 : len(data)-1])), Line: line, Kind: kind})
	if err != nil || r.URL == "" {
		return data, err
	}
	return []byte(cssQuote(r.URL, q)), nil
}

// rewriteMapComment rewrites /*# sourceMappingURL=x.css.map */.
func rewriteMapComment(data []byte, line int, res resolver) ([]byte, error) {
	const key = "sourceMappingURL="
	s := string(data)
	if !strings.HasPrefix(s, "/*# "+key) && !strings.HasPrefix(s, "/*@ "+key) {
		return data, nil
	}
	start := 4 + len(key)
	end := start
	for end < len(s) && !strings.ContainsRune(" \t\n\r\f*", rune(s[end])) {
		end++
	}
	if end == start {
		return data, nil
	}
	r, err := res.resolve(ref{URL: s[start:end], Line: line, Kind: refSourceMap})
	if err != nil || r.URL == "" {
		return data, err
	}
	return []byte(s[:start] + r.URL + s[end:]), nil
}

// cssUnescape decodes CSS escapes (\" \\ \26 and escaped newlines).
func cssUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		j := i
		for j < len(s) && j-i < 6 && isHex(s[j]) {
			j++
		}
		switch {
		case j > i:
			n, _ := strconv.ParseUint(s[i:j], 16, 32)
			if n == 0 || n > 0x10FFFF || (n >= 0xD800 && n <= 0xDFFF) {
				n = 0xFFFD
			}
			b.WriteRune(rune(n))
			if j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n') {
				j++
			}
			i = j - 1
		case s[i] == '\n':
			// escaped newline: a line continuation, contributes nothing
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// cssQuote writes s as a CSS string in quote q.
func cssQuote(s string, q byte) string {
	var b strings.Builder
	b.WriteByte(q)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == q || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\a `)
		case c == '\r':
			b.WriteString(`\d `)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(q)
	return b.String()
}

func concat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}
