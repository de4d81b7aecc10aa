package dedupe

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestMemoryRingStaysBounded: released claims leave stale slots behind;
// they are compacted away, so a shard's ring never exceeds twice its
// share of max_entries, however long the replay goes on.
func TestMemoryRingStaysBounded(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{MaxEntries: 64 * 16})
	for i := 0; i < 100_000; i++ {
		k := Key{Provider: "wazera", ID: fmt.Sprint("r", i%7)}
		c, err := m.Claim(ctx, k, time.Minute)
		if err != nil || c.Outcome != Claimed {
			t.Fatal(c.Outcome, err)
		}
		m.Release(ctx, c)
	}
	for i := range m.shards {
		sh := &m.shards[i]
		if len(sh.ring) > 2*m.perShard || sh.n > len(sh.ring) || len(sh.m) != 0 {
			t.Fatalf("shard %d: ring %d slots (%d used), %d keys; want at most %d slots, no key",
				i, len(sh.ring), sh.n, len(sh.m), 2*m.perShard)
		}
	}
}
