package shardedapi

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestCacheEntryRoundTrip(t *testing.T) {
	for _, e := range []*entry{
		{payload: []byte("value"), version: 7, expiry: time.Now().UnixNano(), delta: 1500 * time.Microsecond},
		{payload: []byte{}, expiry: 1},
		{negative: true, version: 1, expiry: 42, delta: time.Second},
	} {
		b := encodeEntry(e)
		got, err := decodeEntry("k", b)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", e, err)
		}
		if !bytes.Equal(got.payload, e.payload) || got.negative != e.negative || got.version != e.version ||
			got.expiry != e.expiry || got.delta != e.delta {
			t.Errorf("round trip: got %+v, want %+v", got, e)
		}
	}
}

// FuzzDecodeEntry: any bytes decode to an entry that re-encodes to the same
// bytes, or to a *MalformedEntryError; never a panic.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry(&entry{payload: []byte("payload"), version: 3, expiry: 1 << 60, delta: time.Millisecond}))
	f.Add(encodeEntry(&entry{negative: true, expiry: 5}))
	f.Add([]byte{})
	f.Add([]byte{entryMagic, entryFormat})
	f.Add([]byte("not an entry at all, but long enough to have a header"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry("k", b)
		if err != nil {
			var me *MalformedEntryError
			if !errors.As(err, &me) || !errors.Is(err, ErrMalformedEntry) {
				t.Fatalf("decode error %v (%T) is not a *MalformedEntryError", err, err)
			}
			return
		}
		if again := encodeEntry(e); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded entry differs:\n got %x\nwant %x", again, b)
		}
	})
}
