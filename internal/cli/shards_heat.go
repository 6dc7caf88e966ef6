package cli

import (
	"fmt"
	"html"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal (the heat map is printed
// there by default, not into pipes and CI logs).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// heatRamp shades a bucket from no load to the hottest.
const heatRamp = " .:-=+*#%@"

func maxLoad(st statusReport) int64 {
	var m int64
	for _, b := range st.Buckets {
		m = max(m, b.load(st.ByTraffic))
	}
	return m
}

// heatMap draws every bucket as one character, 64 per line, each line
// prefixed with its first bucket.
func heatMap(st statusReport) string {
	top := maxLoad(st)
	var sb strings.Builder
	for i, b := range st.Buckets {
		if i%64 == 0 {
			fmt.Fprintf(&sb, "%5d ", b.Bucket)
		}
		c := heatRamp[0]
		if l := b.load(st.ByTraffic); l > 0 && top > 0 {
			c = heatRamp[1+int(int64(len(heatRamp)-2)*l/top)]
		}
		sb.WriteByte(c)
		if i%64 == 63 || i == len(st.Buckets)-1 {
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

// statusHTML is the status report as one self-contained page: the bucket
// grid coloured by load and a bar per shard.
func statusHTML(st statusReport) string {
	top := maxLoad(st)
	what := "rows"
	if st.ByTraffic {
		what = "reads + writes (all processes)"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<!doctype html><html><head><meta charset="utf-8"><title>assetctl shards status</title><style>
body{font:14px system-ui,sans-serif;margin:2em}
.grid{display:grid;grid-template-columns:repeat(32,14px);gap:1px}
.grid div{width:14px;height:14px}
.bar{height:16px;background:#c0392b;margin:2px 0}
td{padding:2px 8px}
</style></head><body><h1>Map version %d</h1><p>Skew %.2f (largest shard's %s / mean).</p><h2>Buckets by %s</h2><div class="grid">`,
		st.MapVersion, st.Skew, html.EscapeString(what), html.EscapeString(what))
	for _, b := range st.Buckets {
		l := b.load(st.ByTraffic)
		light := 96
		if top > 0 {
			light = 96 - int(60*l/top)
		}
		fmt.Fprintf(&sb, `<div style="background:hsl(5,75%%,%d%%)" title="bucket %d on %s: %d rows, %d reads, %d writes"></div>`,
			light, b.Bucket, html.EscapeString(b.Shard), b.Rows, b.Reads, b.Writes)
	}
	sb.WriteString(`</div><h2>Shards</h2><table>`)
	var most int64 = 1
	for _, s := range st.Shards {
		most = max(most, shardLoad(s, st.ByTraffic))
	}
	for _, s := range st.Shards {
		l := shardLoad(s, st.ByTraffic)
		fmt.Fprintf(&sb, `<tr><td>%s</td><td>%d buckets</td><td>%d rows</td><td style="width:400px"><div class="bar" style="width:%d%%"></div></td></tr>`,
			html.EscapeString(s.Shard), s.Buckets, s.Rows, 100*l/most)
	}
	sb.WriteString(`</table></body></html>`)
	return sb.String()
}

func shardLoad(s shardStatus, byTraffic bool) int64 {
	if byTraffic {
		return s.Reads + s.Writes
	}
	return s.Rows
}
