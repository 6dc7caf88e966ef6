package origin

import (
	"strconv"
	"strings"
	"text/template/parse"
)

// ref is one constant name a template passes to asset, integrity or entry.
type ref struct {
	file string // template file name, relative to the directory
	line int
	pos  parse.Pos
	fn   string // asset, integrity or entry
	name string
	opts []string // entry options ("prefetch")
	bad  string   // an option entry does not know
}

// treeInfo is what one parse tree says about assets and other templates.
type treeInfo struct {
	refs  []ref
	calls []string // names of templates it invokes, constant by syntax
}

// resolvingFuncs are the template functions whose constant arguments are
// checked against the manifest.
var resolvingFuncs = map[string]bool{"asset": true, "integrity": true, "entry": true}

// walkTree finds every constant asset name and every {{template}} call
// in tree. A name written as a string literal counts whether it is the
// function's argument ({{asset "x"}}) or piped into it ({{"x" | asset}});
// computed names ({{asset .Image}}) are resolved when rendered.
func walkTree(tree *parse.Tree) treeInfo {
	var info treeInfo
	var node func(n parse.Node)
	pipe := func(p *parse.PipeNode) {
		if p == nil {
			return
		}
		for i, c := range p.Cmds {
			for _, arg := range c.Args {
				node(arg)
			}
			if len(c.Args) == 0 {
				continue
			}
			id, ok := c.Args[0].(*parse.IdentifierNode)
			if !ok || !resolvingFuncs[id.Ident] {
				continue
			}
			var lit *parse.StringNode
			var rest []parse.Node
			switch {
			case len(c.Args) >= 2:
				lit, _ = c.Args[1].(*parse.StringNode)
				rest = c.Args[2:]
			case i > 0 && len(p.Cmds[i-1].Args) == 1:
				lit, _ = p.Cmds[i-1].Args[0].(*parse.StringNode)
			}
			if lit == nil {
				continue
			}
			r := ref{file: tree.ParseName, line: lineOf(tree, c), pos: c.Position(), fn: id.Ident, name: lit.Text}
			for _, o := range rest {
				s, ok := o.(*parse.StringNode)
				switch {
				case !ok:
				case id.Ident == "entry" && s.Text == "prefetch":
					r.opts = append(r.opts, s.Text)
				default:
					r.bad = s.Text
				}
			}
			info.refs = append(info.refs, r)
		}
	}
	node = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				node(c)
			}
		case *parse.ActionNode:
			pipe(n.Pipe)
		case *parse.IfNode:
			pipe(n.Pipe)
			node(n.List)
			node(n.ElseList)
		case *parse.RangeNode:
			pipe(n.Pipe)
			node(n.List)
			node(n.ElseList)
		case *parse.WithNode:
			pipe(n.Pipe)
			node(n.List)
			node(n.ElseList)
		case *parse.TemplateNode:
			info.calls = append(info.calls, n.Name)
			pipe(n.Pipe)
		case *parse.PipeNode:
			pipe(n)
		case *parse.ChainNode:
			node(n.Node)
		}
	}
	if tree != nil && tree.Root != nil {
		node(tree.Root)
	}
	return info
}

// lineOf is the line of n in its template file, from the parser's own
// "name:line:col" location.
func lineOf(tree *parse.Tree, n parse.Node) int {
	loc, _ := tree.ErrorContext(n)
	parts := strings.Split(loc, ":")
	if len(parts) < 3 {
		return 0
	}
	line, _ := strconv.Atoi(parts[len(parts)-2])
	return line
}

// closest returns the candidate nearest to name by edit distance, or ""
// when none is near enough to be a plausible typo.
func closest(name string, candidates []string) string {
	name = strings.TrimPrefix(name, "/")
	best, bestD := "", max(2, len(name)/3)+1
	for _, c := range candidates {
		if d := len(c) - len(name); d >= bestD || -d >= bestD {
			continue
		}
		if d := editDistance(name, c, bestD); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, or limit when it is
// at least limit (the rows stop early once every cell reaches it).
func editDistance(a, b string, limit int) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}
