package dedupe_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/dedupe"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMemoryEvictsOldestWhenFull(t *testing.T) {
	const max = 64 * 16 // 16 per shard
	m := dedupe.NewMemory(dedupe.MemoryOptions{MaxEntries: max})
	ctx := context.Background()
	const n = 20000
	for i := 0; i < n; i++ {
		c, err := m.Claim(ctx, dedupe.Key{Provider: "wazera", ID: fmt.Sprint(i)}, time.Hour)
		if err != nil || c.Outcome != dedupe.Claimed {
			t.Fatal(c.Outcome, err)
		}
		m.Commit(ctx, c, time.Hour)
	}
	if l := m.Len(); l > max {
		t.Errorf("Len = %d, want at most %d", l, max)
	}
	if ev := m.Evictions(); ev < n-max {
		t.Errorf("Evictions = %d, want at least %d", ev, n-max)
	}
	// the newest are still remembered, the oldest are gone
	if c, _ := m.Claim(ctx, dedupe.Key{Provider: "wazera", ID: fmt.Sprint(n - 1)}, time.Hour); c.Outcome != dedupe.Done {
		t.Errorf("newest key: %s, want done", c.Outcome)
	}
	if c, _ := m.Claim(ctx, dedupe.Key{Provider: "wazera", ID: "0"}, time.Hour); c.Outcome != dedupe.Claimed {
		t.Errorf("oldest key: %s, want claimed (evicted)", c.Outcome)
	}
}

func TestMemoryDropsExpiredEntries(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := dedupe.NewMemory(dedupe.MemoryOptions{MaxEntries: 1 << 20, Now: clock.Now})
	ctx := context.Background()
	for i := 0; i < 5000; i++ {
		m.Claim(ctx, dedupe.Key{Provider: "zavu", ID: fmt.Sprint("old", i)}, time.Second)
	}
	clock.Add(2 * time.Second)
	for i := 0; i < 5000; i++ {
		m.Claim(ctx, dedupe.Key{Provider: "zavu", ID: fmt.Sprint("new", i)}, time.Hour)
	}
	// every insertion dropped up to two expired entries at its shard's head
	if l := m.Len(); l > 5000+5000/4 {
		t.Errorf("Len = %d after the old half expired, want near 5000", l)
	}
	if m.Evictions() != 0 {
		t.Errorf("Evictions = %d: expiry is not eviction", m.Evictions())
	}
}

func TestMemoryExpiryFollowsInjectedClock(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := dedupe.NewMemory(dedupe.MemoryOptions{Now: clock.Now})
	ctx := context.Background()
	k := dedupe.Key{Provider: "vobiz", ID: "e"}
	c, _ := m.Claim(ctx, k, 30*time.Second)
	clock.Add(29 * time.Second)
	claim(t, m, k, time.Minute, dedupe.InFlight)
	clock.Add(2 * time.Second)
	c2 := claim(t, m, k, time.Minute, dedupe.Claimed)
	m.Release(ctx, c) // stale: must not free c2's claim
	claim(t, m, k, time.Minute, dedupe.InFlight)
	m.Commit(ctx, c2, 48*time.Hour)
	clock.Add(47 * time.Hour)
	claim(t, m, k, time.Minute, dedupe.Done)
	clock.Add(2 * time.Hour)
	claim(t, m, k, time.Minute, dedupe.Claimed)
}
