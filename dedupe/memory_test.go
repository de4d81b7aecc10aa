package dedupe_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/dedupe"
	"github.com/wagate/caddy-webhook/internal/testutil"
)

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
	clock := testutil.NewClock(time.Unix(1_700_000_000, 0))
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
	clock := testutil.NewClock(time.Unix(1_700_000_000, 0))
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

// delivered commits n events of provider p and returns their keys.
func delivered(t *testing.T, m *dedupe.Memory, p string, n int) []dedupe.Key {
	t.Helper()
	ks := make([]dedupe.Key, n)
	for i := range ks {
		ks[i] = dedupe.Key{Provider: p, ID: fmt.Sprint("delivered-", i)}
		c := claim(t, m, ks[i], time.Minute, dedupe.Claimed)
		if err := m.Commit(context.Background(), c, 48*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	return ks
}

func stillDone(t *testing.T, m *dedupe.Memory, ks []dedupe.Key) {
	t.Helper()
	lost := 0
	for _, k := range ks {
		if c, _ := m.Claim(context.Background(), k, time.Minute); c.Outcome != dedupe.Done {
			lost++
		}
	}
	if lost > 0 || m.Evictions() != 0 {
		t.Errorf("%d of %d delivered ids forgotten (%d evictions) in a store holding fewer live keys than max_entries",
			lost, len(ks), m.Evictions())
	}
}

// TestMemoryReleasedClaimsDoNotEvict: max_entries bounds live keys. One
// captured request that the app refuses, replayed 15,000 times (a claim
// and a release each), and 15,000 distinct events refused during an
// upstream outage, leave every delivered id in place.
func TestMemoryReleasedClaimsDoNotEvict(t *testing.T) {
	ctx := context.Background()
	for name, replay := range map[string]func(i int) dedupe.Key{
		"one request replayed": func(int) dedupe.Key { return dedupe.Key{Provider: "wazera", ID: "captured"} },
		"upstream outage":      func(i int) dedupe.Key { return dedupe.Key{Provider: "wazera", ID: fmt.Sprint("refused-", i)} },
	} {
		t.Run(name, func(t *testing.T) {
			m := dedupe.NewMemory(dedupe.MemoryOptions{MaxEntries: 64 * 256})
			ks := delivered(t, m, "wazera", 64*128) // half full
			for i := 0; i < 15_000; i++ {
				c := claim(t, m, replay(i), time.Minute, dedupe.Claimed)
				if err := m.Release(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			stillDone(t, m, ks)
		})
	}
}

// TestMemoryExpiredClaimsDoNotEvict: claims abandoned (a gateway killed
// mid-delivery) and expired make room before any delivered id is evicted.
func TestMemoryExpiredClaimsDoNotEvict(t *testing.T) {
	clock := testutil.NewClock(time.Unix(1_700_000_000, 0))
	m := dedupe.NewMemory(dedupe.MemoryOptions{MaxEntries: 64 * 256, Now: clock.Now})
	ks := delivered(t, m, "zavu", 64*128)
	// 16 rounds of 64*32 abandoned claims: twice the bound in all; few
	// enough per round that no shard's live keys reach its share of it
	for round := 0; round < 16; round++ {
		for i := 0; i < 64*32; i++ {
			claim(t, m, dedupe.Key{Provider: "zavu", ID: fmt.Sprint("abandoned-", round, "-", i)}, 30*time.Second, dedupe.Claimed)
		}
		clock.Add(31 * time.Second)
	}
	stillDone(t, m, ks)
	if l := m.Len(); l > 64*256 {
		t.Errorf("Len = %d, want at most max_entries %d", l, 64*256)
	}
}

// TestMemoryLiveKeysBound: whatever mix of claims, releases and commits,
// the store never holds more than max_entries keys, and evicts (oldest
// first) only when that many are live.
func TestMemoryLiveKeysBound(t *testing.T) {
	ctx := context.Background()
	const max = 64 * 8
	m := dedupe.NewMemory(dedupe.MemoryOptions{MaxEntries: max})
	for i := 0; i < 50_000; i++ {
		c := claim(t, m, dedupe.Key{Provider: "vobiz", ID: fmt.Sprint(i)}, time.Hour, dedupe.Claimed)
		if i%3 == 0 {
			m.Release(ctx, c)
		} else {
			m.Commit(ctx, c, time.Hour)
		}
		if l := m.Len(); l > max {
			t.Fatalf("after %d events Len = %d > max_entries %d", i+1, l, max)
		}
	}
	// the latest committed events are all remembered
	for i := 50_000 - 1; i >= 50_000-max/4; i-- {
		if i%3 == 0 {
			continue
		}
		claim(t, m, dedupe.Key{Provider: "vobiz", ID: fmt.Sprint(i)}, time.Hour, dedupe.Done)
	}
}
