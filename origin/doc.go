// Package origin is what a Go web application needs to serve the dynamic
// side of a site whose assets assetctl built and deployed to a CDN.
//
// The manifest-aware half (this file's neighbours assets, templates,
// hints, source and live) turns a manifest into HTML:
//
//   - Assets is one immutable snapshot of a manifest and a CDN base URL. It
//     maps a source name ("css/site.css") to the absolute CDN URL of the
//     hashed file and its integrity, and renders every tag a bundle entry
//     needs, in the order Vite's backend-integration guide recommends, with
//     integrity, crossorigin and a per-request CSP nonce.
//   - Templates is an html/template set loaded from a directory whose
//     constant asset names are all resolved against the manifest at load
//     time, so a typo fails start-up with file:line and a suggestion, never
//     a request. Check runs the same resolution against a new build before
//     it is swapped in.
//   - LinkHeader and EarlyHints send the page's critical assets ahead of
//     the HTML (Link header capped at about 1,000 bytes; 103 only over
//     HTTP/2 and later).
//   - DirSource and BucketSource find the live manifest (a build directory,
//     or the newest deploy record in the bucket, which a rollback also
//     writes); Live polls them, swaps snapshots atomically, keeps the last
//     good one when a new one is broken, and pins one snapshot per request
//     (Middleware, AssetsFrom) so no response mixes two builds.
//
// The package reads the manifest only: it never imports the bundler or the
// uploader. To read a bucket it declares the small BucketReader interface;
// the application adapts its S3 client to it.
package origin
