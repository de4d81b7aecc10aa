package dedupe

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
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
type Redis struct {
	client   redis.UniversalClient
	prefix   string
	timeout  time.Duration
	sets     *batcher
	cleanups chan struct{} // bounds the orphan cleanups running at once
}

// Release: delete only while the token is ours.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// NewRedis returns a store over client. Keys start with prefix; timeout
// bounds each operation (default DefaultTimeout). Close stops the store's
// goroutines but does not close the client, which may be shared.
func NewRedis(client redis.UniversalClient, prefix string, timeout time.Duration) *Redis {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Redis{client: client, prefix: prefix, timeout: timeout, sets: newBatcher(client), cleanups: make(chan struct{}, 256)}
}

// RedisKey returns the Redis key of an event under prefix.
func RedisKey(prefix string, k Key) string { return prefix + k.Provider + ":" + k.ID }

func unavailable(err error) error { return fmt.Errorf("%w: %w", ErrUnavailable, err) }

// Claim implements Store: SET key token NX PX ttl GET. The reply is the
// previous value: none (claimed), "done", or another claim's token.
func (r *Redis) Claim(ctx context.Context, key Key, ttl time.Duration) (Claim, error) {
	if !key.valid() {
		return Claim{Key: key}, ErrInvalidKey
	}
	c := Claim{Key: key}
	rand.Read(c.token[:])
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	prev, err := r.sets.set(ctx, RedisKey(r.prefix, key), hex.EncodeToString(c.token[:]),
		redis.SetArgs{Mode: "NX", TTL: ttl, Get: true})
	switch {
	case err == redis.Nil:
		c.Outcome = Claimed
	case err != nil:
		r.forget(c)
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
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	prev, err := r.sets.set(ctx, RedisKey(r.prefix, c.Key), doneValue, redis.SetArgs{TTL: ttl, Get: true})
	if err != nil && err != redis.Nil {
		return unavailable(err)
	}
	if prev != hex.EncodeToString(c.token[:]) {
		return ErrClaimLost
	}
	return nil
}

// forget deletes, in the background, a claim whose SET may have reached
// Redis with only its reply lost: left alone, it would turn every retry
// away as in flight until it expires. The token check makes this safe
// whatever happened since. It retries while Redis does not answer, for
// about 12 s; at most 256 run at once, and past that the claim's own TTL
// frees it.
func (r *Redis) forget(c Claim) {
	select {
	case r.cleanups <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-r.cleanups }()
		for wait := 50 * time.Millisecond; wait < 10*time.Second; wait *= 2 {
			if r.Release(context.Background(), c) == nil {
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

// Release implements Store.
func (r *Redis) Release(ctx context.Context, c Claim) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := releaseScript.Run(ctx, r.client, []string{RedisKey(r.prefix, c.Key)}, hex.EncodeToString(c.token[:])).Err(); err != nil {
		return unavailable(err)
	}
	return nil
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

// Close implements Store: it stops the store's pipeline executors (later
// calls go to the client directly) and leaves the client open.
func (r *Redis) Close() error {
	r.sets.close()
	return nil
}

// RedisOptions configures a Redis client: one address for a single server,
// several for a Cluster, or Sentinel addresses with MasterName.
type RedisOptions struct {
	Addrs            []string
	Username         string
	Password         string
	DB               int
	MasterName       string // Sentinel: the monitored master's name
	SentinelUsername string
	SentinelPassword string
	Cluster          bool // one address that is a Cluster endpoint
	TLS              bool
	TLSCAFile        string // PEM CA bundle; default the system roots
	TLSServerName    string
	TLSCertFile      string // client certificate, for mutual TLS
	TLSKeyFile       string
	DialTimeout      time.Duration
	ReadTimeout      time.Duration
	WriteTimeout     time.Duration
	PoolSize         int
}

// NewRedisClient returns a go-redis client for o. It does not connect.
func NewRedisClient(o RedisOptions) (redis.UniversalClient, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("redis: at least one address is required")
	}
	if o.DB != 0 && (o.Cluster || (len(o.Addrs) > 1 && o.MasterName == "")) {
		return nil, errors.New("redis: db must be 0 with Redis Cluster")
	}
	u := &redis.UniversalOptions{
		Addrs:                 o.Addrs,
		Username:              o.Username,
		Password:              o.Password,
		DB:                    o.DB,
		MasterName:            o.MasterName,
		SentinelUsername:      o.SentinelUsername,
		SentinelPassword:      o.SentinelPassword,
		IsClusterMode:         o.Cluster,
		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		PoolSize:              o.PoolSize,
		ContextTimeoutEnabled: true, // each operation's timeout bounds reads and writes too
		ClientName:            "caddy-webhook",
	}
	if o.TLS {
		cfg, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		u.TLSConfig = cfg
	}
	return redis.NewUniversalClient(u), nil
}

func (o RedisOptions) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.TLSServerName}
	if o.TLSCAFile != "" {
		pem, err := os.ReadFile(o.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis tls ca file %s: no PEM certificates", o.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return nil, errors.New("redis tls: set both cert file and key file, or neither")
	}
	if o.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// String describes the options without secrets, for logs.
func (o RedisOptions) String() string {
	mode := "single"
	switch {
	case o.MasterName != "":
		mode = "sentinel(" + o.MasterName + ")"
	case o.Cluster || len(o.Addrs) > 1:
		mode = "cluster"
	}
	return mode + " " + fmt.Sprint(o.Addrs) + " db=" + strconv.Itoa(o.DB) + " tls=" + strconv.FormatBool(o.TLS)
}

var _ Store = (*Redis)(nil)
