package uploader

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/assetctl/assetctl/manifest"
	"golang.org/x/sync/errgroup"
)

// Op is what an Action does to an object.
type Op string

// The operations a plan contains.
const (
	OpUpload  Op = "upload"  // write the object's bytes and headers
	OpHeaders Op = "headers" // same bytes, new headers: rewrite headers only
	OpDelete  Op = "delete"  // remove the object
)

// Action is one planned change to one object.
type Action struct {
	Op      Op       `json:"op"`
	Path    string   `json:"path"` // output path relative to the output directory
	Key     string   `json:"key"`  // object key, prefix included
	Size    int64    `json:"size,omitempty"`
	Headers *Headers `json:"headers,omitempty"`
	Reason  string   `json:"reason"` // new, changed, headers, removed from site, pruned, ...
}

// Plan is everything a deploy will do, in publish order.
type Plan struct {
	Bucket          string `json:"bucket"`
	Prefix          string `json:"prefix"`
	BuildID         string `json:"buildID"`
	PreviousBuildID string `json:"previousBuildID,omitempty"`
	Rollback        bool   `json:"rollback,omitempty"`
	// Assets (step 1): new fingerprinted files, and header updates of existing ones.
	Assets []Action `json:"assets"`
	// Record (step 2) is the key of the deploy record this deploy writes,
	// or "" when nothing changed.
	Record string `json:"record,omitempty"`
	// Pages (step 3): pages and un-hashed files that are new or changed.
	Pages []Action `json:"pages"`
	// Removes (step 4): pages an earlier deploy published that the site no longer has.
	Removes []Action `json:"removes"`
	// Invalidate (step 5): the CDN paths of changed pages, and of what
	// earlier deploys left pending.
	Invalidate []string `json:"invalidate"`
	// ViewerPaths are, per CDN, the paths viewers request that Invalidate
	// reaches: the prefix's paths as object keys, less each CDN's origin
	// path.
	ViewerPaths []CDNPaths `json:"viewerPaths,omitempty"`
	// ViewerPathsError says why ViewerPaths could not be worked out in a
	// dry run (a deploy fails instead, before it publishes anything).
	ViewerPathsError string `json:"viewerPathsError,omitempty"`
	// CallerRef is the CloudFront caller reference of the invalidation.
	CallerRef string `json:"callerReference,omitempty"`
	// PendingInvalidations counts the invalidations earlier deploys left
	// unfinished that this one completes.
	PendingInvalidations int `json:"pendingInvalidations,omitempty"`
	// Prune (step 6): fingerprinted objects and records no kept deploy references.
	Prune []Action `json:"prune"`
	// PruneSkipped says why the prune will not run, if it will not.
	PruneSkipped string `json:"pruneSkipped,omitempty"`
	// Skipped counts outputs that are already published as they are.
	Skipped int `json:"skipped"`
	// Heads counts the HEAD requests planning needed (outputs the previous
	// record could not vouch for).
	Heads int `json:"heads"`
	// Listed reports a plan made from a listing of the whole prefix (with
	// Options.Verify, or when no usable deploy record exists) rather than
	// from the deploy records alone.
	Listed bool `json:"listed"`
	// Drifted are the newest record's outputs a listing found missing or
	// changed behind deploy's back ("path (missing)", "path (changed)");
	// the plan puts them back. Only a listing can see them.
	Drifted []string `json:"drifted,omitempty"`

	record  *Record
	src     source
	pending []*pendingInvalidation
}

// Changed reports whether the plan writes anything.
func (p *Plan) Changed() bool {
	return len(p.Assets)+len(p.Pages)+len(p.Removes) > 0 || p.Record != ""
}

// source supplies the bytes of outputs: the output directory, or for a
// rollback the bodies kept in a deploy record.
type source interface {
	open(o manifest.Output) (io.ReaderAt, io.Closer, error)
	// check verifies an output can be opened with the manifest's size.
	check(o manifest.Output) error
}

type dirSource struct{ dir string }

func (s dirSource) open(o manifest.Output) (io.ReaderAt, io.Closer, error) {
	f, err := os.Open(filepath.Join(s.dir, filepath.FromSlash(o.Path)))
	if err != nil {
		return nil, nil, fmt.Errorf("open output: %w", err)
	}
	return f, f, nil
}

func (s dirSource) check(o manifest.Output) error {
	p := filepath.Join(s.dir, filepath.FromSlash(o.Path))
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%s is listed in %s but missing: %w (rebuild the site)", p, manifest.FileName, ErrInconsistentBuild)
	}
	if st.Size() != o.Size {
		return fmt.Errorf("%s is %d bytes but %s says %d: %w (rebuild the site)", p, st.Size(), manifest.FileName, o.Size, ErrInconsistentBuild)
	}
	return nil
}

// ErrInconsistentBuild means the output directory does not match its manifest.
var ErrInconsistentBuild = errors.New("output directory does not match its manifest")

type recordSource struct{ r *Record }

func (s recordSource) open(o manifest.Output) (io.ReaderAt, io.Closer, error) {
	b, ok := s.r.Bodies[o.Hash]
	if !ok {
		return nil, nil, fmt.Errorf("%s of build %s is not kept in its deploy record (over %d bytes): %w", o.Path, s.r.BuildID, maxRecordBody, ErrNotRollbackable)
	}
	return bytes.NewReader(b), io.NopCloser(nil), nil
}

func (s recordSource) check(o manifest.Output) error {
	_, _, err := s.open(o)
	return err
}

// ErrNotRollbackable means an earlier deploy cannot be republished.
var ErrNotRollbackable = errors.New("deploy cannot be rolled back")

// remote is the state of the prefix as one listing and the records saw it.
type remote struct {
	objects map[string]Object // by path relative to the prefix
	// prunable, when the state comes from the records rather than a
	// listing, holds every asset any record names (objects holds only
	// those the records vouch for); planPrune looks candidates up there.
	prunable    map[string]Object
	fromRecords bool
	records     []*Record              // readable records, oldest first
	broken      []string               // record keys that could not be read
	pending     []*pendingInvalidation // oldest first
}

func (r *remote) latest() *Record {
	if len(r.records) == 0 {
		return nil
	}
	return r.records[len(r.records)-1]
}

// readRemote lists the prefix once and reads the deploy records in it,
// fetching each record while the listing goes on.
func (d *Deployer) readRemote(ctx context.Context) (*remote, error) {
	return d.listRecords(ctx, d.prefix, false)
}

// listRecords lists prefix and reads the records in it; with latestOnly
// it reads just the newest one (after the listing).
func (d *Deployer) listRecords(ctx context.Context, prefix string, latestOnly bool) (*remote, error) {
	r := &remote{objects: map[string]Object{}}
	type fetched struct {
		key     string
		rec     *Record
		pending *pendingInvalidation
		err     error
	}
	var mu sync.Mutex
	var got []fetched
	// HeadBucket runs beside the listing: a missing bucket, denied access
	// or a dead endpoint then fails at once with a clear message, instead of
	// after the listing's retries.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	checked := make(chan error, 1)
	go func() {
		err := d.store.Check(lctx)
		if errors.Is(err, ErrBucketNotFound) || errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrUnreachable) || errors.Is(err, ErrNoCredentials) {
			cancel()
			checked <- err
			return
		}
		checked <- nil // other failures (throttling, resets) are the listing's to retry
	}()
	g, gctx := errgroup.WithContext(lctx)
	g.SetLimit(d.opts.Concurrency)
	var newest Object
	fetch := func(o Object) {
		g.Go(func() error {
			data, err := d.store.Get(gctx, o.Key)
			if errors.Is(err, ErrNotFound) { // pruned by a concurrent deploy
				return nil
			}
			if err != nil {
				return err
			}
			f := fetched{key: o.Key}
			if isPendingKey(strings.TrimPrefix(o.Key, d.prefix)) {
				f.pending, f.err = decodePending(o.Key, data)
			} else {
				f.rec, f.err = decodeRecord(o.Key, data)
			}
			mu.Lock()
			got = append(got, f)
			mu.Unlock()
			return nil
		})
	}
	err := d.store.List(lctx, prefix, func(o Object) error {
		rel := strings.TrimPrefix(o.Key, d.prefix)
		r.objects[rel] = o
		if isPendingKey(rel) {
			fetch(o)
			return nil
		}
		if !isRecordKey(rel) {
			return nil
		}
		if latestOnly {
			if newest.Key == "" || manifest.CompareRecordKeys(o.Key, newest.Key) > 0 {
				newest = o
			}
			return nil
		}
		fetch(o)
		return nil
	})
	if err == nil && latestOnly && newest.Key != "" {
		fetch(newest)
	}
	gerr := g.Wait()
	if cerr := <-checked; cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	if gerr != nil {
		return nil, fmt.Errorf("read deploy records: %w", gerr)
	}
	sort.Slice(got, func(i, j int) bool { return manifest.CompareRecordKeys(got[i].key, got[j].key) < 0 })
	for _, f := range got {
		if f.err != nil && f.pending == nil && isPendingKey(strings.TrimPrefix(f.key, d.prefix)) {
			d.log.Warn("ignoring unreadable pending-invalidation marker", "key", f.key, "err", f.err)
			continue
		}
		if f.pending != nil {
			r.pending = append(r.pending, f.pending)
			continue
		}
		if f.err != nil {
			d.log.Warn("ignoring unreadable deploy record", "key", f.key, "err", f.err)
			r.broken = append(r.broken, f.key)
			continue
		}
		r.records = append(r.records, f.rec)
	}
	return r, nil
}

// planInput is what a deploy or a rollback publishes.
type planInput struct {
	m        *manifest.Manifest
	src      source
	headers  func(o manifest.Output) Headers
	rollback bool
}

func (d *Deployer) plan(ctx context.Context, rem *remote, in planInput) (*Plan, error) {
	now := d.now()
	p := &Plan{Bucket: d.opts.Bucket, Prefix: d.prefix, BuildID: in.m.BuildID, Rollback: in.rollback, src: in.src,
		Assets: []Action{}, Pages: []Action{}, Removes: []Action{}, Prune: []Action{}, Invalidate: []string{}}
	prev := rem.latest()
	if prev != nil {
		p.PreviousBuildID = prev.BuildID
	}
	if p.Listed = !rem.fromRecords; p.Listed {
		p.Drifted = drift(rem)
	}
	rec := &Record{Version: recordVersion, BuildID: in.m.BuildID, Time: now, Rollback: in.rollback,
		Manifest: in.m, Objects: map[string]RecordObject{}}
	outputs := in.m.Outputs()

	type pending struct {
		o    manifest.Output
		h    Headers
		obj  Object
		prev RecordObject
	}
	var toHead []pending
	var invalidate []string
	current := map[string]bool{}
	for _, o := range outputs {
		if strings.HasPrefix(o.Path, ".assetctl/") {
			return nil, fmt.Errorf("output %s: the .assetctl/ folder is reserved for deploy records: rename it in the site", o.Path)
		}
		current[o.Path] = true
		h := in.headers(o)
		key := d.prefix + o.Path
		obj, exists := rem.objects[o.Path]
		var pr RecordObject
		vouched := false
		if prev != nil {
			pr, vouched = prev.Objects[o.Path]
		}
		ro := RecordObject{Headers: h, Size: o.Size, Immutable: o.Immutable}
		if o.Immutable {
			switch {
			case !exists:
				if err := in.src.check(o); err != nil {
					return nil, err
				}
				p.Assets = append(p.Assets, Action{Op: OpUpload, Path: o.Path, Key: key, Size: o.Size, Headers: &h, Reason: "new"})
			case vouched && pr.Immutable && pr.Headers != h:
				p.Assets = append(p.Assets, Action{Op: OpHeaders, Path: o.Path, Key: key, Headers: &h, Reason: "headers changed"})
			default:
				p.Skipped++
			}
			rec.Objects[o.Path] = ro
			continue
		}
		if !exists {
			if err := in.src.check(o); err != nil {
				return nil, err
			}
			p.Pages = append(p.Pages, Action{Op: OpUpload, Path: o.Path, Key: key, Size: o.Size, Headers: &h, Reason: "new"})
			invalidate = append(invalidate, o.Path)
			rec.Objects[o.Path] = ro
			continue
		}
		if vouched && !pr.Immutable && pr.ETag != "" && pr.ETag == obj.ETag && pr.Size == obj.Size {
			toHead = append(toHead, pending{o: o, h: h, obj: obj, prev: pr})
			continue
		}
		toHead = append(toHead, pending{o: o, h: h, obj: obj})
	}

	// HEAD, in parallel, only what the previous record cannot vouch for.
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(d.opts.Concurrency)
	for i := range toHead {
		if toHead[i].prev.SHA256 != "" {
			continue
		}
		g.Go(func() error {
			obj, err := d.store.Head(gctx, toHead[i].obj.Key)
			if errors.Is(err, ErrNotFound) {
				obj = Object{}
			} else if err != nil {
				return err
			}
			mu.Lock()
			p.Heads++
			mu.Unlock()
			toHead[i].prev = RecordObject{Headers: obj.Headers, Size: obj.Size}
			toHead[i].obj = obj
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	for _, t := range toHead {
		o, h := t.o, t.h
		key := d.prefix + o.Path
		ro := RecordObject{Headers: h, Size: o.Size}
		switch {
		case t.prev.SHA256 != o.Hash || t.obj.Key == "":
			if err := in.src.check(o); err != nil {
				return nil, err
			}
			p.Pages = append(p.Pages, Action{Op: OpUpload, Path: o.Path, Key: key, Size: o.Size, Headers: &h, Reason: "changed"})
			invalidate = append(invalidate, o.Path)
		case t.prev.Headers != h:
			p.Pages = append(p.Pages, Action{Op: OpHeaders, Path: o.Path, Key: key, Headers: &h, Reason: "headers changed"})
			invalidate = append(invalidate, o.Path)
			// The ETag stays "" although the bytes keep theirs: a listing
			// cannot tell whether an interrupted run rewrote the headers.
		default:
			ro.ETag = t.obj.ETag
			p.Skipped++
		}
		rec.Objects[o.Path] = ro
	}
	sortActions(p.Pages)

	// Pages an earlier deploy published that this build no longer has.
	if prev != nil {
		for path, pr := range prev.Objects {
			if pr.Immutable || current[path] {
				continue
			}
			if obj, ok := rem.objects[path]; ok {
				p.Removes = append(p.Removes, Action{Op: OpDelete, Path: path, Key: obj.Key, Size: obj.Size, Reason: "removed from site"})
				invalidate = append(invalidate, path)
			}
		}
		sortActions(p.Removes)
	}

	p.Invalidate = InvalidationPaths(invalidate)
	// Completing an interrupted deploy of the same build: also invalidate
	// what the interrupted run meant to, since some of its pages may be
	// published already and so no longer look changed.
	if prev != nil && prev.BuildID == in.m.BuildID && len(p.Pages)+len(p.Removes) > 0 {
		p.Invalidate = mergePaths(p.Invalidate, prev.Invalidate)
	}

	// A record is written when anything changes, and also when planning
	// had to HEAD what the previous record could not vouch for (after a
	// header rewrite or an interrupted run), so the next plan needs none.
	rec.Verified = len(p.Pages)+len(p.Removes) == 0
	if len(p.Assets)+len(p.Pages)+len(p.Removes) > 0 || prev == nil || prev.BuildID != in.m.BuildID || in.rollback || p.Heads > 0 {
		rec.Key = recordKey(d.prefix, now, in.m.BuildID)
		p.Record = rec.Key
		p.record = rec
	}
	adoptPending(p, rem.pending, cmp.Or(p.Record, now.UTC().Format(recordTimeFormat)))
	rec.Invalidate, rec.CallerRef = p.Invalidate, p.CallerRef
	d.planPrune(p, rem, rec)
	return p, nil
}

// planUnchanged is the fast path of a redeploy: it lists only the record
// folder and reads the newest record. If that record is of this very build
// with the headers the rules give now, and its deploy provably completed
// (its sentinel page is in place, or it had no page step), nothing needs
// doing and no listing of the whole prefix is made. Otherwise it returns
// nil and the full plan runs. Pruning waits for the next deploy that
// changes something.
//
// records is the listing of the record folder with the newest record read.
func (d *Deployer) planUnchanged(ctx context.Context, records *remote, m *manifest.Manifest, headers func(manifest.Output) Headers) (*Plan, error) {
	rec := records.latest()
	if rec == nil || rec.BuildID != m.BuildID {
		return nil, nil
	}
	outputs := m.Outputs()
	if len(rec.Objects) != len(outputs) {
		return nil, nil
	}
	for _, o := range outputs {
		ro, ok := rec.Objects[o.Path]
		if !ok || ro.Immutable != o.Immutable || ro.Headers != headers(o) || ro.Size != o.Size {
			return nil, nil
		}
	}
	p := &Plan{Bucket: d.opts.Bucket, Prefix: d.prefix, BuildID: m.BuildID, PreviousBuildID: rec.BuildID,
		Assets: []Action{}, Pages: []Action{}, Removes: []Action{}, Prune: []Action{}, Invalidate: []string{},
		Skipped: len(outputs), PruneSkipped: "nothing changed: pruning runs with the next deploy that changes something"}
	if !rec.Verified {
		sent, ok := rec.Objects[rec.Sentinel]
		if rec.Sentinel == "" || !ok || sent.ETag == "" {
			return nil, nil
		}
		obj, err := d.store.Head(ctx, d.prefix+rec.Sentinel)
		p.Heads++
		if err != nil || obj.ETag != sent.ETag {
			return nil, nil // interrupted, or changed behind our back: plan in full
		}
	}
	return p, nil
}

func sortActions(a []Action) {
	sort.Slice(a, func(i, j int) bool { return a[i].Path < a[j].Path })
}

// expectedETag is the ETag S3 gives a single-part upload of r's bytes: its
// MD5. Stores that compute ETags differently merely cost a HEAD next time.
func expectedETag(r io.ReaderAt, size int64) (string, error) {
	h := md5.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return "", err
	}
	return `"` + hex.EncodeToString(h.Sum(nil)) + `"`, nil
}
