package testsvc

import (
	"net"
	"testing"
	"time"
)

func TestStartWaitKill(t *testing.T) {
	port := FreePort(t)
	py := Binary(t, "python3", "apt-get install -y python3")
	p := Start(t, "http.server", nil, py, "-m", "http.server", "--bind", "127.0.0.1", itoa(port))
	p.WaitTCP(t, Addr(port), 10*time.Second)
	p.Kill()
	if !p.Exited() {
		t.Fatal("got running process after Kill, want exited")
	}
	if _, err := net.DialTimeout("tcp", Addr(port), 200*time.Millisecond); err == nil {
		t.Fatal("got port still accepting after Kill, want refused")
	}
}

func itoa(n int) string { return Addr(n)[len("127.0.0.1:"):] }
