package dedupe

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Memory is the embedded store, for a single gateway instance. It holds at
// most MaxEntries keys; only when that many are live (neither released
// nor expired) does it evict one, the oldest. It is split into shards, each
// with its own lock, so there is no global lock on the hot path.
//
// Keys are kept as 128-bit seeded hashes, not as strings, so an entry costs
// the same whatever the id's length (about 64 bytes at capacity; see the
// README) and holds no reference to request memory.
type Memory struct {
	shards    [numShards]memShard
	seed0     maphash.Seed
	seed1     maphash.Seed
	perShard  int
	now       func() time.Time
	base      time.Time
	evictions atomic.Uint64
}

const (
	numShards = 64
	doneBit   = 1 << 63 // set in an entry's token once it is committed
	never     = 1<<63 - 1
)

type hkey [2]uint64

type memEntry struct {
	token   uint64 // claim token; doneBit once committed
	expires int64  // nanoseconds since Memory.base
}

type ringSlot struct {
	key   hkey
	token uint64 // the entry the slot was pushed for; stale once the entry's token differs
}

// memShard keeps its keys in a map and their insertion order in a ring of
// slots. Each key in the map has exactly one slot that is not stale; a
// released key leaves a stale slot behind, which costs memory but never
// counts against the bound: the bound is on the map, and the ring is
// compacted when stale slots make up half of it.
type memShard struct {
	mu   sync.Mutex
	m    map[hkey]memEntry
	ring []ringSlot // insertion order, oldest at head; up to 2*perShard slots
	head int
	n    int
	next uint64 // token counter: unique per key, since a key lives in one shard
	// soonest is at or before the earliest expiry in m: until then no key
	// has expired, and a full shard evicts without looking for expired ones
	soonest int64
	_       [56]byte
}

// MemoryOptions configures a Memory store.
type MemoryOptions struct {
	// MaxEntries bounds the number of live keys (claims in flight and
	// delivered ids); default DefaultMaxEntries. Each of the 64 shards
	// holds its share, so eviction starts a little before the store as a
	// whole is full.
	MaxEntries int
	// Now returns the current time; default time.Now. For tests.
	Now func() time.Time
}

// NewMemory returns an empty memory store.
func NewMemory(o MemoryOptions) *Memory {
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Memory{
		seed0:    maphash.MakeSeed(),
		seed1:    maphash.MakeSeed(),
		perShard: max(1, o.MaxEntries/numShards),
		now:      o.Now,
		base:     o.Now(),
	}
	for i := range m.shards {
		m.shards[i].m = make(map[hkey]memEntry)
		m.shards[i].soonest = never
	}
	return m
}

func (m *Memory) hash(k Key) hkey {
	var h0, h1 maphash.Hash
	h0.SetSeed(m.seed0)
	h1.SetSeed(m.seed1)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(k.Provider)))
	for _, h := range []*maphash.Hash{&h0, &h1} {
		h.Write(n[:]) // length first: no two keys write the same bytes
		h.WriteString(k.Provider)
		h.WriteString(k.ID)
	}
	return hkey{h0.Sum64(), h1.Sum64()}
}

func (m *Memory) shard(h hkey) *memShard { return &m.shards[h[0]%numShards] }

func (m *Memory) clock() int64 { return int64(m.now().Sub(m.base)) }

// Claim implements Store.
func (m *Memory) Claim(_ context.Context, key Key, ttl time.Duration) (Claim, error) {
	if !key.valid() {
		return Claim{Key: key}, ErrInvalidKey
	}
	h := m.hash(key)
	sh := m.shard(h)
	now := m.clock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[h]; ok && e.expires > now {
		if e.token&doneBit != 0 {
			return Claim{Key: key, Outcome: Done}, nil
		}
		return Claim{Key: key, Outcome: InFlight}, nil
	}
	sh.next++
	e := memEntry{token: sh.next, expires: now + int64(ttl)}
	sh.m[h] = e
	m.push(sh, h, e, now)
	c := Claim{Key: key, Outcome: Claimed}
	binary.LittleEndian.PutUint64(c.token[:], sh.next)
	return c, nil
}

// locate returns where a claim's key lives, the time, and the claim's
// token, with the shard locked: the caller unlocks it.
func (m *Memory) locate(c Claim) (h hkey, sh *memShard, now int64, tok uint64) {
	h = m.hash(c.Key)
	sh = m.shard(h)
	now = m.clock()
	tok = binary.LittleEndian.Uint64(c.token[:])
	sh.mu.Lock()
	return h, sh, now, tok
}

// Commit implements Store.
func (m *Memory) Commit(_ context.Context, c Claim, ttl time.Duration) error {
	h, sh, now, tok := m.locate(c)
	defer sh.mu.Unlock()
	e, ok := sh.m[h]
	switch {
	case ok && e.expires > now && e.token == tok:
		sh.m[h] = memEntry{token: tok | doneBit, expires: now + int64(ttl)}
		return nil
	case ok && e.expires > now:
		// held by another delivery, or done by one: the event is delivered either way
		sh.m[h] = memEntry{token: e.token | doneBit, expires: max(e.expires, now+int64(ttl))}
	default:
		sh.next++
		e := memEntry{token: sh.next | doneBit, expires: now + int64(ttl)}
		sh.m[h] = e
		m.push(sh, h, e, now)
	}
	return ErrClaimLost
}

// Release implements Store.
func (m *Memory) Release(_ context.Context, c Claim) error {
	h, sh, now, tok := m.locate(c)
	defer sh.mu.Unlock()
	if e, ok := sh.m[h]; ok && e.token == tok && e.expires > now {
		delete(sh.m, h)
	}
	return nil
}

// push records the insertion of h, already in the map with entry e as
// the newest key. It drops up to two dead slots (stale, or of an expired key) at the
// head, so memory follows the live keys; then, if the shard holds more
// than perShard keys, it drops the expired ones and, only if that is not
// enough, evicts the oldest live keys. Released and expired keys never
// push out a live one.
func (m *Memory) push(sh *memShard, h hkey, e memEntry, now int64) {
	for i := 0; i < 2 && sh.n > 0; i++ {
		if _, ok := sh.alive(sh.ring[sh.head], now); ok {
			break
		}
		sh.drop(sh.ring[sh.head])
		sh.pop()
	}
	for len(sh.m) > m.perShard && sh.n > 0 {
		if now >= sh.soonest {
			sh.compact(now) // some key may have expired: free those first
			continue
		}
		old := sh.ring[sh.head]
		if _, ok := sh.valid(old); ok { // live, since nothing has expired
			delete(sh.m, old.key)
			m.evictions.Add(1)
		}
		sh.pop()
	}
	if sh.n == len(sh.ring) {
		if stale := sh.n - (len(sh.m) - 1); sh.n > 0 && 2*stale >= sh.n {
			sh.compact(now) // frees at least half the ring: amortised O(1)
		} else {
			sh.grow(m.perShard)
		}
	}
	sh.ring[(sh.head+sh.n)%len(sh.ring)] = ringSlot{key: h, token: e.token &^ doneBit}
	sh.n++
	sh.soonest = min(sh.soonest, e.expires) // after any compaction, which counts slotted keys only
}

// valid reports whether s is its key's slot (the key is in the map and
// was not inserted again since), and returns the key's entry.
func (sh *memShard) valid(s ringSlot) (memEntry, bool) {
	e, ok := sh.m[s.key]
	return e, ok && e.token&^doneBit == s.token
}

func (sh *memShard) alive(s ringSlot, now int64) (memEntry, bool) {
	e, ok := sh.valid(s)
	return e, ok && e.expires > now
}

// drop deletes the key of a dead slot, if the slot is its key's.
func (sh *memShard) drop(s ringSlot) {
	if _, ok := sh.valid(s); ok {
		delete(sh.m, s.key)
	}
}

func (sh *memShard) pop() {
	sh.ring[sh.head] = ringSlot{}
	sh.head = (sh.head + 1) % len(sh.ring)
	sh.n--
}

// compact deletes the expired keys, drops every dead slot, keeping the
// order of the others, and sets soonest to the earliest expiry among
// them. (The key being pushed has no slot yet; push accounts for it.)
func (sh *memShard) compact(now int64) {
	kept := 0
	sh.soonest = never
	for i := 0; i < sh.n; i++ {
		s := sh.ring[(sh.head+i)%len(sh.ring)]
		e, ok := sh.alive(s, now)
		if !ok {
			sh.drop(s)
			continue
		}
		sh.soonest = min(sh.soonest, e.expires)
		sh.ring[(sh.head+kept)%len(sh.ring)] = s
		kept++
	}
	for i := kept; i < sh.n; i++ {
		sh.ring[(sh.head+i)%len(sh.ring)] = ringSlot{}
	}
	sh.n = kept
}

// grow doubles the ring, keeping the order: up to perShard slots while
// they are mostly live, then up to 2*perShard to hold stale slots until
// the next compaction.
func (sh *memShard) grow(perShard int) {
	limit := perShard
	if len(sh.ring) >= perShard {
		limit = 2 * perShard
	}
	size := min(max(2*len(sh.ring), 64), limit)
	ring := make([]ringSlot, size)
	for i := 0; i < sh.n; i++ {
		ring[i] = sh.ring[(sh.head+i)%len(sh.ring)]
	}
	sh.ring, sh.head = ring, 0
}

// Len returns the number of keys held, live or expired but not yet dropped.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Evictions returns how many live keys were evicted because the store was full.
func (m *Memory) Evictions() uint64 { return m.evictions.Load() }

// Close implements Store; it drops every key.
func (m *Memory) Close() error {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		sh.m = make(map[hkey]memEntry)
		sh.ring, sh.head, sh.n, sh.soonest = nil, 0, 0, never
		sh.mu.Unlock()
	}
	return nil
}

var _ Store = (*Memory)(nil)
