package testsite

import (
	"bufio"
	"math/rand/v2"
	"os"
)

// writeBig streams size pseudo-random bytes to path.
func writeBig(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rnd := rand.New(rand.NewPCG(7, 7))
	buf := make([]byte, 1<<16)
	for left := size; left > 0; {
		for i := range buf {
			buf[i] = byte(rnd.Uint32())
		}
		n := min(int64(len(buf)), left)
		if _, err := w.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
