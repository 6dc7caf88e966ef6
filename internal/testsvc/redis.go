package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"path/filepath"
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

// RedisCluster is a private three-master Redis Cluster (no replicas, no
// persistence) on free loopback ports, stopped when the test ends.
type RedisCluster struct {
	// Addrs are the masters' 127.0.0.1:port addresses.
	Addrs []string
}

// StartRedisCluster starts three cluster-enabled redis-server children,
// joins them with `redis-cli --cluster create` and waits until the cluster
// serves every slot.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	bin := Binary(t, "redis-server", redisInstall)
	cli := Binary(t, "redis-cli", redisInstall)
	dir := t.TempDir()
	c := &RedisCluster{}
	for i := range 3 {
		port := FreePort(t)
		addr := Addr(port)
		p := Start(t, "redis-server "+addr, nil, bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes-"+strconv.Itoa(i)+".conf"),
			"--cluster-node-timeout", "2000")
		p.WaitTCP(t, addr, 10*time.Second)
		c.Addrs = append(c.Addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	rdb := redis.NewClient(&redis.Options{Addr: c.Addrs[0]})
	defer rdb.Close()
	for deadline := time.Now().Add(20 * time.Second); ; {
		info, err := rdb.ClusterInfo(context.Background()).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis Cluster on %v not ready within 20s: %v %s", c.Addrs, err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client returns a cluster client, closed when the test ends.
func (c *RedisCluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
