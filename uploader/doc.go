// Package uploader publishes the output of assetctl build to S3 (or any
// S3-compatible store) safely and incrementally: it plans from the manifest
// and the previous deploy record, uploads new fingerprinted assets first,
// then the deploy record, then pages, invalidates only the pages that
// changed at the CDN, and prunes old assets only when no recent deploy can
// still reference them.
package uploader
