package shardedapi

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"
)

// A cached entry is a fixed header followed by the payload:
//
//	offset size field
//	0      1    magic 0xCA
//	1      1    entry format version (entryFormat)
//	2      1    flags (bit 0: negative entry, the row does not exist)
//	3      1    reserved, 0
//	4      4    caller's value version (CacheOptions.ValueVersion)
//	8      8    soft expiry, Unix nanoseconds
//	16     4    delta: how long the load took, microseconds (for XFetch)
//	20     4    CRC-32C of the payload
//	24     n    payload
//
// A reader that meets another format version treats the entry as malformed
// (a miss), so a format change never misreads old bytes; the caller's own
// payload format is versioned by ValueVersion the same way.
const (
	entryMagic      = 0xCA
	entryFormat     = 1
	entryHeaderSize = 24
	flagNegative    = 1 << 0
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// entry is a decoded cache entry.
type entry struct {
	payload  []byte
	negative bool
	version  uint32
	expiry   int64 // soft expiry, Unix nanoseconds
	delta    time.Duration
}

// fresh reports whether the entry's soft TTL has not ended at now.
func (e *entry) fresh(now time.Time) bool { return now.UnixNano() < e.expiry }

func encodeEntry(e *entry) []byte {
	b := make([]byte, entryHeaderSize+len(e.payload))
	b[0] = entryMagic
	b[1] = entryFormat
	if e.negative {
		b[2] = flagNegative
	}
	binary.BigEndian.PutUint32(b[4:], e.version)
	binary.BigEndian.PutUint64(b[8:], uint64(e.expiry))
	d := e.delta.Microseconds()
	if d > 1<<32-1 {
		d = 1<<32 - 1
	}
	binary.BigEndian.PutUint32(b[16:], uint32(d))
	binary.BigEndian.PutUint32(b[20:], crc32.Checksum(e.payload, crcTable))
	copy(b[entryHeaderSize:], e.payload)
	return b
}

// decodeEntry parses b; the payload aliases b. Errors are *MalformedEntryError.
func decodeEntry(key string, b []byte) (*entry, error) {
	bad := func(format string, args ...any) error {
		return &MalformedEntryError{Key: key, Reason: fmt.Sprintf(format, args...)}
	}
	if len(b) < entryHeaderSize {
		return nil, bad("%d bytes, shorter than the %d-byte header", len(b), entryHeaderSize)
	}
	if b[0] != entryMagic {
		return nil, bad("magic byte 0x%02x, want 0x%02x", b[0], entryMagic)
	}
	if b[1] != entryFormat {
		return nil, bad("format version %d, want %d", b[1], entryFormat)
	}
	if b[2]&^flagNegative != 0 || b[3] != 0 {
		return nil, bad("unknown flags 0x%02x%02x", b[2], b[3])
	}
	e := &entry{
		negative: b[2]&flagNegative != 0,
		version:  binary.BigEndian.Uint32(b[4:]),
		expiry:   int64(binary.BigEndian.Uint64(b[8:])),
		delta:    time.Duration(binary.BigEndian.Uint32(b[16:])) * time.Microsecond,
		payload:  b[entryHeaderSize:],
	}
	if e.negative && len(e.payload) != 0 {
		return nil, bad("negative entry with a %d-byte payload", len(e.payload))
	}
	if got, want := crc32.Checksum(e.payload, crcTable), binary.BigEndian.Uint32(b[20:]); got != want {
		return nil, bad("payload checksum %08x, want %08x", got, want)
	}
	return e, nil
}
