package dedupe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the store for several gateway instances behind a load balancer.
// Each event is one key, prefix + provider + ":" + id, so a Redis Cluster
// hashes it to one slot and no operation spans slots. The value is the
// claim's token while in flight and "done" once committed.
//
// Each operation is one round trip, bounded by the store's timeout; past it
// the operation fails with ErrUnavailable. Claim and Commit are plain SET
// commands with the GET option (Redis 7.0 or later, or Valkey), which read
// the previous state in the same command; Release is a small Lua script,
// since it deletes only while the token matches. The client reconnects by
// itself when Redis comes back.
//
// A Redis value is a view, with its own key prefix, of one connection:
// the client, the timeout and the pipelining of concurrent commands
// (see batcher). WithPrefix returns another view of the same connection,
// so that routes sharing a Redis share its batching.
type Redis struct {
	*redisConn
	prefix string
}

type redisConn struct {
	client   redis.UniversalClient
	timeout  time.Duration
	sets     *batcher
	cleanups chan struct{} // bounds the orphan cleanups running at once
}

// Release: delete only while the token is ours.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// NewRedis returns a store over client, with keys starting with prefix;
// timeout bounds each operation (default DefaultTimeout). The client must
// have ContextTimeoutEnabled set, so that the timeout also cuts a read or
// write that Redis leaves hanging. Close stops the store's goroutines but
// does not close the client.
func NewRedis(client redis.UniversalClient, prefix string, timeout time.Duration) *Redis {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := &redisConn{client: client, timeout: timeout, cleanups: make(chan struct{}, 256)}
	c.sets = newBatcher(client, timeout, c.forget)
	return &Redis{redisConn: c, prefix: prefix}
}

// WithPrefix returns a store whose keys start with prefix, over the same
// connection: same client, timeout and pipelining. Closing either closes
// both.
func (r *Redis) WithPrefix(prefix string) *Redis {
	return &Redis{redisConn: r.redisConn, prefix: prefix}
}

// RedisKey returns the Redis key of an event under prefix.
func RedisKey(prefix string, k Key) string { return prefix + k.Provider + ":" + k.ID }

func unavailable(err error) error { return fmt.Errorf("%w: %w", ErrUnavailable, err) }

// Claim implements Store: SET key token NX PX ttl GET. The reply is the
// previous value: none (claimed), "done", or another claim's token. A
// claim that fails is never left behind: one that may have been written is
// deleted again (see forget).
func (r *Redis) Claim(ctx context.Context, key Key, ttl time.Duration) (Claim, error) {
	if !key.valid() {
		return Claim{Key: key}, ErrInvalidKey
	}
	c := Claim{Key: key}
	rand.Read(c.token[:])
	prev, err := r.sets.set(ctx, time.Now().Add(r.timeout), RedisKey(r.prefix, key), hex.EncodeToString(c.token[:]),
		redis.SetArgs{Mode: "NX", TTL: ttl, Get: true}, true)
	switch {
	case err == redis.Nil:
		c.Outcome = Claimed
	case err != nil:
		return Claim{Key: key}, unavailable(err)
	case prev == doneValue:
		c.Outcome = Done
	default:
		c.Outcome = InFlight
	}
	return c, nil
}

const doneValue = "done"

// Commit implements Store: SET key done PX ttl GET, whatever the state
// (the upstream accepted the event); the previous value tells whether the
// claim was still ours.
func (r *Redis) Commit(ctx context.Context, c Claim, ttl time.Duration) error {
	prev, err := r.sets.set(ctx, time.Now().Add(r.timeout), RedisKey(r.prefix, c.Key), doneValue, redis.SetArgs{TTL: ttl, Get: true}, false)
	if err != nil && err != redis.Nil {
		return unavailable(err)
	}
	if prev != hex.EncodeToString(c.token[:]) {
		return ErrClaimLost
	}
	return nil
}

// forget deletes, in the background, a claim that was or may have been
// written although its caller was told it failed (a reply lost, or a
// caller that stopped waiting): left alone, it would turn every retry away
// as in flight until it expires. The token check makes this safe whatever
// happened since. It retries while Redis does not answer, for about 12 s;
// at most 256 run at once, and past that the claim's own TTL frees it.
func (r *redisConn) forget(key, token string) {
	select {
	case r.cleanups <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-r.cleanups }()
		for wait := 50 * time.Millisecond; wait < 10*time.Second; wait *= 2 {
			if r.release(context.Background(), key, token) == nil {
				return
			}
			select {
			case <-time.After(wait):
			case <-r.sets.stop:
				return
			}
		}
	}()
}

func (r *redisConn) release(ctx context.Context, key, token string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := releaseScript.Run(ctx, r.client, []string{key}, token).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Release implements Store.
func (r *Redis) Release(ctx context.Context, c Claim) error {
	return r.release(ctx, RedisKey(r.prefix, c.Key), hex.EncodeToString(c.token[:]))
}

// ErrTooOld: the server predates Redis 7.0, whose SET ... NX ... GET the
// store relies on.
var ErrTooOld = errors.New("redis 7.0 or later (or valkey) is required")

// Check verifies that every node answers within the timeout (else
// ErrUnavailable) and runs Redis 7.0 or later (else ErrTooOld).
func (r *Redis) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	check := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return unavailable(err)
		}
		if v := infoField(info, "redis_version"); majorVersion(v) < 7 {
			return fmt.Errorf("%w: %s runs %s", ErrTooOld, c.Options().Addr, v)
		}
		return nil
	}
	switch c := r.client.(type) {
	case *redis.ClusterClient:
		return c.ForEachShard(ctx, check)
	case *redis.Client:
		return check(ctx, c)
	}
	// a client that is neither (a Ring, or a caller's own): reachability
	// only. Sentinel is a *redis.Client above, checked on its master.
	if err := r.client.Ping(ctx).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

func majorVersion(v string) int {
	major, _, _ := strings.Cut(v, ".")
	n, _ := strconv.Atoi(major)
	return n
}

// Close implements Store: it stops the connection's pipeline executor,
// once it has sent what was queued (later calls go to the client
// directly), and leaves the client open. It closes every view of the
// connection (see WithPrefix).
func (r *Redis) Close() error {
	r.sets.close()
	return nil
}

var _ Store = (*Redis)(nil)
