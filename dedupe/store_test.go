package dedupe_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/caddy-webhook/dedupe"
	"github.com/wagate/caddy-webhook/internal/redistest"
)

// One redis-server and one 3-master Redis Cluster for the package's tests.
var (
	single  *redistest.Server
	cluster *redistest.Cluster
)

func TestMain(m *testing.M) {
	var err error
	if single, err = redistest.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "redis:", err)
		os.Exit(1)
	}
	if cluster, err = redistest.StartCluster(); err != nil {
		single.Close()
		fmt.Fprintln(os.Stderr, "redis cluster:", err)
		os.Exit(1)
	}
	code := m.Run()
	single.Close()
	cluster.Close()
	os.Exit(code)
}

func uniquePrefix() string {
	var b [6]byte
	rand.Read(b[:])
	return "test:" + hex.EncodeToString(b[:]) + ":"
}

// newClient returns a client as the store wants it: context deadlines cut
// reads and writes.
func newClient(t testing.TB, o *redis.UniversalOptions) redis.UniversalClient {
	t.Helper()
	o.ContextTimeoutEnabled = true
	c := redis.NewUniversalClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// backends returns a fresh store of each kind, isolated from other tests.
func backends(t *testing.T) map[string]dedupe.Store {
	return map[string]dedupe.Store{
		"memory":        dedupe.NewMemory(dedupe.MemoryOptions{}),
		"redis":         dedupe.NewRedis(newClient(t, &redis.UniversalOptions{Addrs: []string{single.Addr}}), uniquePrefix(), time.Second),
		"redis-cluster": dedupe.NewRedis(newClient(t, &redis.UniversalOptions{Addrs: cluster.Addrs()}), uniquePrefix(), time.Second),
	}
}

const (
	shortTTL = 300 * time.Millisecond
	pastTTL  = 500 * time.Millisecond // sleep this long to outlive shortTTL
	longTTL  = time.Hour
)

func claim(t *testing.T, s dedupe.Store, k dedupe.Key, ttl time.Duration, want dedupe.Outcome) dedupe.Claim {
	t.Helper()
	c, err := s.Claim(context.Background(), k, ttl)
	if err != nil {
		t.Fatalf("Claim(%v): %v", k, err)
	}
	if c.Outcome != want {
		t.Fatalf("Claim(%v) = %s, want %s", k, c.Outcome, want)
	}
	return c
}

// TestConformance runs the same behaviour against every backend.
func TestConformance(t *testing.T) {
	ctx := context.Background()
	k := dedupe.Key{Provider: "wazera", ID: "evt_1"}
	cases := map[string]func(t *testing.T, s dedupe.Store){
		"claim, commit, then done": func(t *testing.T, s dedupe.Store) {
			c := claim(t, s, k, longTTL, dedupe.Claimed)
			claim(t, s, k, longTTL, dedupe.InFlight)
			if err := s.Commit(ctx, c, longTTL); err != nil {
				t.Fatal(err)
			}
			claim(t, s, k, longTTL, dedupe.Done)
		},
		"release lets the retry through": func(t *testing.T, s dedupe.Store) {
			c := claim(t, s, k, longTTL, dedupe.Claimed)
			if err := s.Release(ctx, c); err != nil {
				t.Fatal(err)
			}
			claim(t, s, k, longTTL, dedupe.Claimed)
		},
		"release after commit does nothing": func(t *testing.T, s dedupe.Store) {
			c := claim(t, s, k, longTTL, dedupe.Claimed)
			s.Commit(ctx, c, longTTL)
			s.Release(ctx, c)
			claim(t, s, k, longTTL, dedupe.Done)
		},
		"an abandoned claim frees itself": func(t *testing.T, s dedupe.Store) {
			claim(t, s, k, shortTTL, dedupe.Claimed)
			claim(t, s, k, shortTTL, dedupe.InFlight)
			time.Sleep(pastTTL)
			claim(t, s, k, shortTTL, dedupe.Claimed)
		},
		"done outlives the in-flight time": func(t *testing.T, s dedupe.Store) {
			c := claim(t, s, k, shortTTL, dedupe.Claimed)
			if err := s.Commit(ctx, c, longTTL); err != nil {
				t.Fatal(err)
			}
			time.Sleep(pastTTL)
			claim(t, s, k, shortTTL, dedupe.Done)
		},
		"done expires after its own ttl": func(t *testing.T, s dedupe.Store) {
			c := claim(t, s, k, longTTL, dedupe.Claimed)
			s.Commit(ctx, c, shortTTL)
			time.Sleep(pastTTL)
			claim(t, s, k, longTTL, dedupe.Claimed)
		},
		"a stale release after expiry and re-claim is a no-op": func(t *testing.T, s dedupe.Store) {
			slow := claim(t, s, k, shortTTL, dedupe.Claimed)
			time.Sleep(pastTTL)
			fresh := claim(t, s, k, longTTL, dedupe.Claimed)
			if err := s.Release(ctx, slow); err != nil {
				t.Fatal(err)
			}
			claim(t, s, k, longTTL, dedupe.InFlight) // still fresh's
			if err := s.Commit(ctx, fresh, longTTL); err != nil {
				t.Fatalf("fresh commit: %v", err)
			}
			claim(t, s, k, longTTL, dedupe.Done)
		},
		"a late commit still marks done and reports the lost claim": func(t *testing.T, s dedupe.Store) {
			c := claim(t, s, k, shortTTL, dedupe.Claimed)
			time.Sleep(pastTTL)
			if err := s.Commit(ctx, c, longTTL); !errors.Is(err, dedupe.ErrClaimLost) {
				t.Fatalf("Commit after expiry: %v, want ErrClaimLost", err)
			}
			claim(t, s, k, longTTL, dedupe.Done)
		},
		"a late commit over another's claim marks done": func(t *testing.T, s dedupe.Store) {
			slow := claim(t, s, k, shortTTL, dedupe.Claimed)
			time.Sleep(pastTTL)
			other := claim(t, s, k, longTTL, dedupe.Claimed)
			if err := s.Commit(ctx, slow, longTTL); !errors.Is(err, dedupe.ErrClaimLost) {
				t.Fatalf("Commit: %v, want ErrClaimLost", err)
			}
			s.Release(ctx, other) // the other's upstream failed: the event stays delivered
			claim(t, s, k, longTTL, dedupe.Done)
		},
		"providers are namespaced": func(t *testing.T, s dedupe.Store) {
			claim(t, s, dedupe.Key{Provider: "wazera", ID: "same"}, longTTL, dedupe.Claimed)
			claim(t, s, dedupe.Key{Provider: "zavu", ID: "same"}, longTTL, dedupe.Claimed)
			claim(t, s, dedupe.Key{Provider: "wazera", ID: "same"}, longTTL, dedupe.InFlight)
			// no ambiguity where provider and id meet
			claim(t, s, dedupe.Key{Provider: "a", ID: "b\x00c"}, longTTL, dedupe.Claimed)
			claim(t, s, dedupe.Key{Provider: "a\x00b", ID: "c"}, longTTL, dedupe.Claimed)
			claim(t, s, dedupe.Key{Provider: "a", ID: "b:c"}, longTTL, dedupe.Claimed)
			for _, bad := range []dedupe.Key{{Provider: "a:b", ID: "c"}, {Provider: "", ID: "c"}, {Provider: "a", ID: ""}} {
				if _, err := s.Claim(ctx, bad, longTTL); !errors.Is(err, dedupe.ErrInvalidKey) {
					t.Errorf("Claim(%q) err = %v, want ErrInvalidKey", bad, err)
				}
			}
		},
		"1000 concurrent claims, one winner": func(t *testing.T, s dedupe.Store) {
			var wg sync.WaitGroup
			var mu sync.Mutex
			counts := map[dedupe.Outcome]int{}
			for i := 0; i < 1000; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := s.Claim(ctx, k, longTTL)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						t.Error(err)
					}
					counts[c.Outcome]++
				}()
			}
			wg.Wait()
			if counts[dedupe.Claimed] != 1 || counts[dedupe.InFlight] != 999 {
				t.Errorf("outcomes %v, want 1 claimed and 999 in flight", counts)
			}
		},
	}
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			for cname, fn := range cases {
				t.Run(cname, func(t *testing.T) {
					t.Parallel()
					// each case gets its own key space
					fn(t, &keyed{Store: s, suffix: cname})
				})
			}
		})
	}
}

// keyed gives each parallel case its own ids on a shared store.
type keyed struct {
	dedupe.Store
	suffix string
}

func (k *keyed) Claim(ctx context.Context, key dedupe.Key, ttl time.Duration) (dedupe.Claim, error) {
	if key.ID != "" {
		key.ID += "/" + k.suffix
	}
	return k.Store.Claim(ctx, key, ttl)
}

func TestRedisPrefixAndTTL(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, &redis.UniversalOptions{Addrs: []string{single.Addr}})
	a := dedupe.NewRedis(client, "tenant-a:", time.Second)
	b := dedupe.NewRedis(client, "tenant-b:", time.Second)
	k := dedupe.Key{Provider: "zavu", ID: "evt_" + uniquePrefix()}
	c, _ := a.Claim(ctx, k, time.Minute)
	if c.Outcome != dedupe.Claimed {
		t.Fatal(c.Outcome)
	}
	claim(t, b, k, time.Minute, dedupe.Claimed) // other prefix, other key
	if err := a.Commit(ctx, c, 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	raw := "tenant-a:zavu:" + k.ID
	if v, err := client.Get(ctx, raw).Result(); err != nil || v != "done" {
		t.Errorf("GET %s = %q, %v; want done", raw, v, err)
	}
	if ttl, _ := client.PTTL(ctx, raw).Result(); ttl < 47*time.Hour || ttl > 48*time.Hour {
		t.Errorf("PTTL %s = %s, want about 48h", raw, ttl)
	}
}

// TestRedisClusterSpreadsKeys checks that the cluster store really uses
// every master: each key hashes to its own slot.
func TestRedisClusterSpreadsKeys(t *testing.T) {
	prefix := uniquePrefix()
	s := dedupe.NewRedis(newClient(t, &redis.UniversalOptions{Addrs: cluster.Addrs()}), prefix, time.Second)
	for i := 0; i < 200; i++ {
		claim(t, s, dedupe.Key{Provider: "vobiz", ID: fmt.Sprint("evt-", i)}, time.Minute, dedupe.Claimed)
	}
	for _, n := range cluster.Nodes {
		keys, err := n.Do("--scan", "--pattern", prefix+"*")
		if err != nil {
			t.Fatal(err)
		}
		if keys == "" {
			t.Errorf("node %s holds none of the 200 keys", n.Addr)
		}
	}
}

func TestRedisCheck(t *testing.T) {
	for name, addrs := range map[string][]string{"single": {single.Addr}, "cluster": cluster.Addrs()} {
		s := dedupe.NewRedis(newClient(t, &redis.UniversalOptions{Addrs: addrs}), "x:", time.Second)
		if err := s.Check(context.Background()); err != nil {
			t.Errorf("%s: Check: %v", name, err)
		}
	}
}

// TestRedisCloseDuringTraffic: a store closed by a config reload while
// requests still use it (the old handler's requests outlive the reload)
// answers every one of them, and its claims stay exclusive.
func TestRedisCloseDuringTraffic(t *testing.T) {
	ctx := context.Background()
	s := dedupe.NewRedis(newClient(t, &redis.UniversalOptions{Addrs: []string{single.Addr}}), uniquePrefix(), time.Second)
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := dedupe.Key{Provider: "wazera", ID: fmt.Sprint("evt-", i%(n/2))} // every id twice
			c, err := s.Claim(ctx, k, time.Minute)
			if err == nil && c.Outcome == dedupe.Claimed {
				err = s.Commit(ctx, c, time.Hour)
			}
			errs <- err
		}()
		if i == n/2 {
			s.Close()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a request during Close: %v", err)
		}
	}
	for i := 0; i < n/2; i++ { // each id claimed once and committed
		claim(t, s, dedupe.Key{Provider: "wazera", ID: fmt.Sprint("evt-", i)}, time.Minute, dedupe.Done)
	}
}
