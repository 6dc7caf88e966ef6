package testsvc

import (
	"context"
	"strings"
	"testing"
)

func TestRedisPrefixIsCleanedUp(t *testing.T) {
	ctx := context.Background()
	var prefix string
	t.Run("user", func(t *testing.T) {
		client, p := Redis(t)
		prefix = p
		if !strings.HasPrefix(p, "test:TestRedisPrefixIsCleanedUp/user:") {
			t.Errorf("prefix %q does not name the test", p)
		}
		for _, k := range []string{"a", "b*", "{c}"} {
			if err := client.Set(ctx, p+k, "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	client, _ := Redis(t)
	n := 0
	for it := client.Scan(ctx, 0, escapeRedisGlob(prefix)+"*", 1000).Iterator(); it.Next(ctx); {
		n++
	}
	if n != 0 {
		t.Errorf("keys left under %q after the test: got %d, want 0", prefix, n)
	}
}

func TestRedisServerRestartsOnSamePort(t *testing.T) {
	ctx := context.Background()
	srv := StartRedis(t)
	rdb := srv.Client(t)
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET on the private server: %v", err)
	}
	srv.Kill()
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatalf("PING after Kill: got nil error, want one")
	}
	srv.Start(t)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after the restart on %s: %v", srv.Addr, err)
	}
	if n := rdb.Exists(ctx, "k").Val(); n != 0 {
		t.Errorf("a killed server without persistence kept its data")
	}
}

func TestRedisClusterServesAllSlots(t *testing.T) {
	c := StartRedisCluster(t)
	rdb := c.Client(t)
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		if err := rdb.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatalf("SET %s on the cluster: %v", k, err)
		}
	}
	if n := len(c.Addrs); n != 3 {
		t.Errorf("masters: got %d, want 3", n)
	}
}
