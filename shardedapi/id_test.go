package shardedapi

import (
	"errors"
	"testing"
	"time"
)

func TestMakeIDDecodes(t *testing.T) {
	at := time.Date(2026, 11, 26, 20, 30, 15, 123_000_000, time.UTC)
	for _, tc := range []struct {
		bucket, seq int
	}{{0, 0}, {1023, 1023}, {4095, 1}, {17, 512}} {
		id, err := MakeID(at, tc.bucket, tc.seq)
		if err != nil {
			t.Fatalf("MakeID(%v, %d, %d): %v", at, tc.bucket, tc.seq, err)
		}
		if got := id.Time(); !got.Equal(at) {
			t.Errorf("Time: got %v, want %v", got, at)
		}
		if got := id.Bucket(); got != tc.bucket {
			t.Errorf("Bucket: got %d, want %d", got, tc.bucket)
		}
		if got := id.Seq(); got != tc.seq {
			t.Errorf("Seq: got %d, want %d", got, tc.seq)
		}
		back, err := ParseID(id.String())
		if err != nil || back != id {
			t.Errorf("ParseID(String()): got %d, %v, want %d", back, err, id)
		}
	}
}

func TestIDsSortByTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// A later millisecond sorts after, whatever the bucket and sequence.
	early, _ := MakeID(t0, 4095, 1023)
	late, _ := MakeID(t0.Add(time.Millisecond), 0, 0)
	if !(early < late) {
		t.Errorf("got %d >= %d, want an ID of a later millisecond to sort after", early, late)
	}
	// The last ID the layout can hold is still positive.
	last, err := MakeID(IDEpoch.Add((1<<idTimeBits-1)*time.Millisecond), MaxBuckets-1, 1<<idSeqBits-1)
	if err != nil || last <= 0 {
		t.Errorf("last ID: got %d, %v, want a positive ID", last, err)
	}
}

func TestMakeIDRejectsOutOfRange(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, f := range map[string]func() (ID, error){
		"before epoch":  func() (ID, error) { return MakeID(IDEpoch.Add(-time.Millisecond), 0, 0) },
		"after range":   func() (ID, error) { return MakeID(IDEpoch.Add((1<<idTimeBits)*time.Millisecond), 0, 0) },
		"bucket 4096":   func() (ID, error) { return MakeID(now, MaxBuckets, 0) },
		"bucket -1":     func() (ID, error) { return MakeID(now, -1, 0) },
		"sequence 1024": func() (ID, error) { return MakeID(now, 0, 1024) },
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := f(); !errors.Is(err, ErrInvalidID) {
				t.Errorf("got %v, want ErrInvalidID", err)
			}
		})
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1", "0", "-5", "9223372036854775807", "9223372036854775808", "12a", "", " 1", "+7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidID) {
				t.Fatalf("ParseID(%q): got %v, want an ErrInvalidID", s, err)
			}
			return
		}
		if id <= 0 {
			t.Fatalf("ParseID(%q): got %d, want a positive ID", s, id)
		}
		if back, err := ParseID(id.String()); err != nil || back != id {
			t.Fatalf("round trip of %d: got %d, %v", id, back, err)
		}
	})
}
