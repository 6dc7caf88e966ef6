package hasher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"testing/iotest"
	"testing/quick"
)

// TestSumMatchesSHA256 is a property test: for any bytes and any way the
// reader splits them, Sum and Copy agree with crypto/sha256 and Copy
// writes exactly the input.
func TestSumMatchesSHA256(t *testing.T) {
	ctx := context.Background()
	prop := func(data []byte, mode uint8) bool {
		r := bytes.NewReader(data)
		var src = iotestReader(r, mode)
		var dst bytes.Buffer
		d, n, err := Copy(ctx, &dst, src)
		if err != nil || n != int64(len(data)) || !bytes.Equal(dst.Bytes(), data) {
			return false
		}
		want := sha256.Sum256(data)
		d2, _, err := Sum(ctx, bytes.NewReader(data))
		return err == nil && d == Digest(want) && d2 == d && Bytes(data) == d
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 300}); err != nil {
		t.Fatal(err)
	}
}

func iotestReader(r *bytes.Reader, mode uint8) interface{ Read([]byte) (int, error) } {
	switch mode % 3 {
	case 0:
		return iotest.OneByteReader(r)
	case 1:
		return iotest.HalfReader(r)
	default:
		return iotest.DataErrReader(r)
	}
}

func TestSumLargerThanBuffer(t *testing.T) {
	data := make([]byte, 3*bufSize+17)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	d, n, err := Sum(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)) || d != Digest(sha256.Sum256(data)) {
		t.Fatalf("got %s (%d bytes), want %x (%d bytes)", d.Hex(), n, sha256.Sum256(data), len(data))
	}
}

func TestSumCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Sum(ctx, bytes.NewReader([]byte("x"))); err != context.Canceled {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestDigestForms(t *testing.T) {
	d := Bytes([]byte("hello"))
	sum := sha256.Sum256([]byte("hello"))
	if got, want := d.Hex(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Hex: got %s, want %s", got, want)
	}
	if got, want := d.Short(), hex.EncodeToString(sum[:])[:8]; got != want {
		t.Errorf("Short: got %s, want %s", got, want)
	}
	if got, want := d.Integrity(), "sha256-"+base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Errorf("Integrity: got %s, want %s", got, want)
	}
}

func TestName(t *testing.T) {
	d := Bytes([]byte("x"))
	h := d.Short()
	for _, tc := range []struct{ in, want string }{
		{"img/logo.png", "img/logo." + h + ".png"},
		{"logo.png", "logo." + h + ".png"},
		{"LICENSE", "LICENSE." + h},
		{"js/app.js.map", "js/app." + h + ".js.map"},
		{"a/b.c/d.tar.gz", "a/b.c/d." + h + ".tar.gz"},
		{".well-known/.hidden", ".well-known/.hidden." + h},
		{"fonts/inter.var.woff2", "fonts/inter.var." + h + ".woff2"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := Name(tc.in, d); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestNameProperty: every name keeps its directory and extension and
// carries exactly the 8-hex short hash.
func TestNameProperty(t *testing.T) {
	re := regexp.MustCompile(`\.[0-9a-f]{8}(\.|$)`)
	prop := func(stem string, data []byte) bool {
		if stem == "" {
			stem = "f"
		}
		d := Bytes(data)
		n := Name("dir/"+stem+".css", d)
		return filepath.Dir(n) == "dir" && filepath.Ext(n) == ".css" && re.MatchString(n[len("dir/"):]) &&
			bytes.Contains([]byte(n), []byte("."+d.Short()+".css"))
	}
	if err := quick.Check(prop, nil); err != nil {
		t.Fatal(err)
	}
}

func TestFilesParallelMatchesSequential(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	var paths []string
	for i := range 40 {
		data := make([]byte, rng.IntN(600<<10))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		p := filepath.Join(dir, string(rune('a'+i%26))+string(rune('a'+i/26))+".bin")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	got, err := Files(context.Background(), paths, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range paths {
		data, _ := os.ReadFile(p)
		if got[i].Path != p || got[i].Digest != Digest(sha256.Sum256(data)) || got[i].Size != int64(len(data)) {
			t.Errorf("%s: got %s/%d, want %x/%d", p, got[i].Digest.Hex(), got[i].Size, sha256.Sum256(data), len(data))
		}
	}
	if _, err := Files(context.Background(), []string{filepath.Join(dir, "missing")}, 0); err == nil {
		t.Error("missing file: got nil error, want one")
	}
}
