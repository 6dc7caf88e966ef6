package uploader

import (
	"fmt"
)

// planPrune decides which fingerprinted objects and records can go: an
// asset stays while one of the last Keep records references it, while any
// deploy that was live at some moment within Grace references it (a
// replaced page lives on in browsers and edges for its max-age), or while
// the object itself is younger than Grace. Only objects some deploy record
// lists as fingerprinted are candidates, so files deploy did not publish
// are never touched, and nothing outside the prefix is ever listed.
func (d *Deployer) planPrune(p *Plan, rem *remote, next *Record) {
	if d.opts.NoPrune {
		p.PruneSkipped = "pruning disabled"
		return
	}
	if len(rem.broken) > 0 {
		p.PruneSkipped = fmt.Sprintf("deploy record %s is unreadable, so what it references is unknown", rem.broken[0])
		return
	}
	records := append([]*Record(nil), rem.records...)
	if p.record != nil {
		records = append(records, next)
	}
	now := d.now()
	cutoff := now.Add(-d.opts.Grace)
	referenced := map[string]bool{}
	for path, o := range next.Objects {
		if o.Immutable {
			referenced[path] = true
		}
	}
	// Keep counts builds, not records: a redeploy or record refresh of the
	// same build does not push an older build out.
	recent := map[string]bool{}
	for i := len(records) - 1; i >= 0 && len(recent) < d.opts.Keep; i-- {
		recent[records[i].BuildID] = true
	}
	var dropRecords []*Record
	for i, r := range records {
		liveUntil := now
		if i+1 < len(records) {
			liveUntil = records[i+1].Time
		}
		if recent[r.BuildID] || liveUntil.After(cutoff) {
			for path, o := range r.Objects {
				if o.Immutable {
					referenced[path] = true
				}
			}
			continue
		}
		dropRecords = append(dropRecords, r)
	}
	seen := map[string]bool{}
	var deletes []Action
	for _, r := range records {
		for path, o := range r.Objects {
			if !o.Immutable || referenced[path] || seen[path] {
				continue
			}
			seen[path] = true
			objs := rem.objects
			if rem.prunable != nil {
				objs = rem.prunable
			}
			obj, ok := objs[path]
			if !ok || obj.LastModified.After(cutoff) {
				continue
			}
			deletes = append(deletes, Action{Op: OpDelete, Path: path, Key: obj.Key, Size: obj.Size, Reason: "pruned"})
		}
	}
	sortActions(deletes)
	// Records go after their assets, so a failed prune leaves them to
	// vouch for what is left.
	for _, r := range dropRecords {
		deletes = append(deletes, Action{Op: OpDelete, Path: r.Key[len(d.prefix):], Key: r.Key, Reason: "old deploy record"})
	}
	if d.opts.MaxDeletes > 0 && len(deletes) > d.opts.MaxDeletes {
		p.PruneSkipped = fmt.Sprintf("prune would delete %d objects, more than --max-deletes %d: nothing pruned (raise the cap to prune)", len(deletes), d.opts.MaxDeletes)
		return
	}
	p.Prune = deletes
}
