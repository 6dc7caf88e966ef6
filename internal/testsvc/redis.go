package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SharedRedisAddr is the machine's Redis server that tests share.
const SharedRedisAddr = "127.0.0.1:6379"

const redisInstall = "apt-get install -y redis-server"

// Redis returns a client (ContextTimeoutEnabled) for the machine's Redis at SharedRedisAddr and a
// key prefix unique to this test ("test:<name>:<random>:"). Every key under
// the prefix is deleted when the test ends (never FLUSHALL: other tests
// share the server). The test fails with the install command if Redis does
// not answer.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: SharedRedisAddr, ContextTimeoutEnabled: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		t.Fatalf("Redis at %s does not answer (%v): install and start it with `%s && service redis-server start`", SharedRedisAddr, err, redisInstall)
	}
	prefix := "test:" + redisSanitizeName(t.Name()) + ":" + redisRandomHex(6) + ":"
	t.Cleanup(func() {
		defer rdb.Close()
		DeleteRedisPrefix(t, rdb, prefix)
	})
	return rdb, prefix
}

// DeleteRedisPrefix deletes every key that starts with prefix.
func DeleteRedisPrefix(t testing.TB, rdb redis.UniversalClient, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, escapeRedisGlob(prefix)+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 500 {
			rdb.Del(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		rdb.Del(ctx, keys...)
	}
	if err := iter.Err(); err != nil {
		t.Errorf("delete Redis keys under %q: %v", prefix, err)
	}
}

// RedisServer is a private redis-server child process (no persistence) that
// a test may kill and restart on the same port.
type RedisServer struct {
	// Addr is 127.0.0.1:<Port>.
	Addr string
	Port int
	bin  string
	proc *Process
}

// StartRedis starts a private redis-server on a free loopback port; it is
// killed when the test ends.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	s := &RedisServer{bin: Binary(t, "redis-server", redisInstall)}
	s.Port = FreePort(t)
	s.Addr = Addr(s.Port)
	s.Start(t)
	return s
}

// Start (re)starts the server on its port and waits until it listens.
func (s *RedisServer) Start(t testing.TB) {
	t.Helper()
	if s.proc != nil && !s.proc.Exited() {
		t.Fatalf("redis-server on %s is already running", s.Addr)
	}
	s.proc = Start(t, "redis-server", nil, s.bin,
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	s.proc.WaitTCP(t, s.Addr, 10*time.Second)
}

// Kill stops the server at once (SIGKILL), dropping its data.
func (s *RedisServer) Kill() {
	if s.proc != nil {
		s.proc.Kill()
	}
}

// Client returns a client for the server, closed when the test ends.
// Short timeouts make a dead server fail fast; ContextTimeoutEnabled lets
// callers' deadlines reach the socket.
func (s *RedisServer) Client(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{
		Addr:         s.Addr,
		DialTimeout:  200 * time.Millisecond,
		ReadTimeout:  200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond,
		MaxRetries:   -1,

		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func redisSanitizeName(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '{' || r == '}' || r == ' ' || r == '*' || r == '?' || r == '[' || r == ']' || r == '\\' {
			return '_'
		}
		return r
	}, name)
}

func escapeRedisGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

func redisRandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
