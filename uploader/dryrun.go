package uploader

import (
	"context"
	"io"
	"log/slog"
)

// dryRunStore reads through to a real store and turns every write into a
// debug log line, so a dry run plans against the real bucket and changes
// nothing.
type dryRunStore struct {
	Store
	log *slog.Logger
}

var _ Store = (*dryRunStore)(nil)

func (s *dryRunStore) Put(_ context.Context, key string, _ io.ReaderAt, size int64, h Headers) error {
	s.log.Debug("dry run: would put", "key", key, "size", size, "content-type", h.ContentType, "cache-control", h.CacheControl)
	return nil
}

func (s *dryRunStore) SetHeaders(_ context.Context, key string, h Headers) error {
	s.log.Debug("dry run: would set headers", "key", key, "content-type", h.ContentType, "cache-control", h.CacheControl)
	return nil
}

func (s *dryRunStore) Delete(_ context.Context, keys []string) error {
	s.log.Debug("dry run: would delete", "keys", len(keys))
	return nil
}
