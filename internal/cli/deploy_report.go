package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/assetctl/assetctl/uploader"
)

// writeSummary prints the plan of a dry run, or what a deploy did.
func writeSummary(w io.Writer, res *uploader.Result, dryRun bool) {
	p := res.Plan
	dest := "s3://" + p.Bucket + "/" + p.Prefix
	what := "build " + p.BuildID
	if p.Rollback {
		what = "rollback to build " + p.BuildID
	}
	if dryRun {
		fmt.Fprintf(w, "plan: %s -> %s (live: %s)\n", what, dest, orNone(p.PreviousBuildID))
		section := func(title string, actions []uploader.Action) {
			fmt.Fprintf(w, "%s: %d\n", title, len(actions))
			for _, a := range actions {
				fmt.Fprintf(w, "  %-7s %s (%s)", a.Op, a.Key, a.Reason)
				if a.Size > 0 {
					fmt.Fprintf(w, " %s", humanBytes(a.Size))
				}
				if a.Headers != nil {
					fmt.Fprintf(w, "\n          Content-Type: %s\n          Cache-Control: %s", a.Headers.ContentType, a.Headers.CacheControl)
				}
				fmt.Fprintln(w)
			}
		}
		section("1. assets", p.Assets)
		fmt.Fprintf(w, "2. deploy record: %s\n", orNone(p.Record))
		section("3. pages", p.Pages)
		section("4. removed pages", p.Removes)
		fmt.Fprintf(w, "5. invalidate: %d paths\n", len(p.Invalidate))
		for _, path := range p.Invalidate {
			fmt.Fprintf(w, "  %s\n", path)
		}
		writeViewerPaths(w, p, "  ")
		section("6. prune", p.Prune)
		if p.PruneSkipped != "" {
			fmt.Fprintf(w, "  prune skipped: %s\n", p.PruneSkipped)
		}
		writeDrift(w, p)
		fmt.Fprintf(w, "unchanged: %d files (skipped)\ndry run: nothing was changed\n", p.Skipped)
		return
	}
	if !p.Changed() {
		fmt.Fprintf(w, "%s is already live at %s: nothing to do (%d files unchanged, %s)\n", p.BuildID, dest, p.Skipped, res.Duration.Round(time.Millisecond))
		return
	}
	fmt.Fprintf(w, "deployed %s to %s in %s\n", what, dest, res.Duration.Round(time.Millisecond))
	fmt.Fprintf(w, "  uploaded %d files (%s), updated headers of %d, skipped %d unchanged, deleted %d\n",
		res.Uploaded, humanBytes(res.Bytes), res.HeadersSet, res.Skipped, res.Deleted)
	if len(p.Invalidate) > 0 && res.CDNs == 0 {
		fmt.Fprintf(w, "  %d changed page paths; no CDN to invalidate (--cloudfront-distribution, --purge)\n", len(p.Invalidate))
	} else if len(p.Invalidate) > 0 {
		fmt.Fprintf(w, "  invalidated %d paths at %d CDNs", len(p.Invalidate), res.CDNs)
		if len(res.Invalidations) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(res.Invalidations, ", "))
		}
		fmt.Fprintln(w)
		writeViewerPaths(w, p, "  ")
	}
	if p.PruneSkipped != "" {
		fmt.Fprintf(w, "  prune skipped: %s\n", p.PruneSkipped)
	}
	writeDrift(w, p)
	if res.PruneError != "" {
		fmt.Fprintf(w, "  prune failed (retried next deploy): %s\n", res.PruneError)
	}
}

// writeViewerPaths says, per CDN, which viewer paths the invalidation
// reaches and which origin path mapped them.
func writeViewerPaths(w io.Writer, p *uploader.Plan, indent string) {
	if p.ViewerPathsError != "" {
		fmt.Fprintf(w, "%sviewer paths unknown: %s\n", indent, p.ViewerPathsError)
	}
	for _, c := range p.ViewerPaths {
		fmt.Fprintf(w, "%s%s (origin path %q, %s): %d viewer paths\n", indent, c.CDN, c.OriginPath, c.Source, len(c.Paths))
		for _, path := range c.Paths {
			fmt.Fprintf(w, "%s  %s\n", indent, path)
		}
	}
}

// writeDrift lists what a --verify listing found deleted or changed by hand.
func writeDrift(w io.Writer, p *uploader.Plan) {
	if len(p.Drifted) == 0 {
		return
	}
	fmt.Fprintf(w, "  drift: %d objects differ from the last deploy record (put back):\n", len(p.Drifted))
	for _, d := range p.Drifted {
		fmt.Fprintf(w, "    %s\n", d)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
