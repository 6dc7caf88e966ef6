package uploader

import (
	"context"
	"sort"
	"time"
)

// remoteFromRecords builds the remote state a plan needs from the deploy
// records alone, without listing the prefix, so a deploy's requests grow
// with what changed rather than with the site. It returns nil (list
// instead) when the records cannot vouch for the bucket: none, one
// unreadable, or the newest one's deploy not provably complete (its
// sentinel page is not in place with its expected ETag).
//
// What the records vouch for:
//   - every page and file of the newest record, with the ETag it recorded
//     (an unknown ETag makes the plan HEAD that object, as after a listing);
//   - the fingerprinted assets of every record a prune would keep now (the
//     last Keep builds, and those live within Grace). No prune ever deleted
//     those: a record a prune dropped is never kept again later, so an
//     asset whose deletion a failed prune left half-done is not trusted
//     and is uploaded again if a build needs it.
//
// Objects changed or deleted by hand are not seen: Options.Verify lists
// the prefix and repairs them.
func (d *Deployer) remoteFromRecords(ctx context.Context, recs *remote) *remote {
	latest := recs.latest()
	if latest == nil || len(recs.broken) > 0 {
		return nil
	}
	if !latest.Verified {
		sent, ok := latest.Objects[latest.Sentinel]
		if latest.Sentinel == "" || !ok || sent.ETag == "" {
			return nil
		}
		obj, err := d.store.Head(ctx, d.prefix+latest.Sentinel)
		if err != nil || obj.ETag != sent.ETag {
			return nil // interrupted, or changed behind our back
		}
	}
	kept := d.keptRecords(recs.records, d.now())
	rem := &remote{objects: map[string]Object{}, prunable: map[string]Object{}, records: recs.records, pending: recs.pending, fromRecords: true}
	for i, r := range recs.records {
		for path, o := range r.Objects {
			if !o.Immutable {
				continue
			}
			obj := Object{Key: d.prefix + path, Size: o.Size, LastModified: r.Time}
			// The newest record referencing an asset gives the latest time
			// it can have been written: pruning by it keeps an asset at
			// least as long as its real age would.
			rem.prunable[path] = obj
			if kept[i] {
				rem.objects[path] = obj
			}
		}
	}
	for path, o := range latest.Objects {
		if !o.Immutable {
			rem.objects[path] = Object{Key: d.prefix + path, Size: o.Size, ETag: o.ETag, LastModified: latest.Time}
		}
	}
	return rem
}

// keptRecords marks the records (oldest first) a prune run at now keeps:
// those of the last Keep builds and those live at some moment within
// Grace. planPrune applies the same rule.
func (d *Deployer) keptRecords(records []*Record, now time.Time) []bool {
	kept := make([]bool, len(records))
	recent := map[string]bool{}
	for i := len(records) - 1; i >= 0 && len(recent) < d.opts.Keep; i-- {
		recent[records[i].BuildID] = true
	}
	cutoff := now.Add(-d.opts.Grace)
	for i, r := range records {
		liveUntil := now
		if i+1 < len(records) {
			liveUntil = records[i+1].Time
		}
		kept[i] = recent[r.BuildID] || liveUntil.After(cutoff)
	}
	return kept
}

// drift lists the outputs of the newest record that a full listing shows
// missing, or (for files whose ETag the record knows) with other bytes or
// headers: objects deleted or overwritten behind deploy's back. The plan
// that follows re-uploads them.
func drift(rem *remote) []string {
	latest := rem.latest()
	if latest == nil {
		return nil
	}
	var out []string
	for path, o := range latest.Objects {
		obj, ok := rem.objects[path]
		switch {
		case !ok:
			out = append(out, path+" (missing)")
		case !o.Immutable && o.ETag != "" && obj.ETag != o.ETag:
			out = append(out, path+" (changed)")
		}
	}
	sort.Strings(out)
	return out
}
