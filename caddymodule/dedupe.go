package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wagate/caddy-webhook/dedupe"
)

// Dedupe configures the store that drops duplicate events.
type Dedupe struct {
	// Store is "memory" (the default: one gateway instance), "redis"
	// (several instances behind a load balancer), or "off".
	Store string `json:"store,omitempty"`
	// KeyPrefix starts every key. Routes that must each receive every event
	// of one provider (a fan-out) need different prefixes. Default "webhook:".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// MaxEntries bounds the memory store; the oldest keys are evicted when
	// it is full. Default 1,000,000 (about 104 MB).
	MaxEntries int `json:"max_entries,omitempty"`
	// Redis configures the Redis store.
	Redis *Redis `json:"redis,omitempty"`
}

// Redis holds the options users know from other Caddy Redis modules. One
// address is a single server; several are a Cluster; with master_name they
// are Sentinels. Every string takes placeholders such as {env.REDIS_PASSWORD}.
type Redis struct {
	Address          []string `json:"address,omitempty"`
	Username         string   `json:"username,omitempty"`
	Password         string   `json:"password,omitempty"`
	DB               int      `json:"db,omitempty"`
	MasterName       string   `json:"master_name,omitempty"`
	SentinelUsername string   `json:"sentinel_username,omitempty"`
	SentinelPassword string   `json:"sentinel_password,omitempty"`
	// Cluster marks a single address as a Redis Cluster endpoint.
	Cluster bool `json:"cluster,omitempty"`
	// TLS connects with TLS; TLSCAFile replaces the system roots,
	// TLSServerName the name checked, TLSCertFile and TLSKeyFile give a
	// client certificate.
	TLS           bool   `json:"tls,omitempty"`
	TLSCAFile     string `json:"tls_ca_file,omitempty"`
	TLSServerName string `json:"tls_server_name,omitempty"`
	TLSCertFile   string `json:"tls_cert_file,omitempty"`
	TLSKeyFile    string `json:"tls_key_file,omitempty"`
	// Timeout bounds each dedupe operation; past it the operation is a
	// store error (see on_store_error). Default 500ms.
	Timeout      caddy.Duration `json:"timeout,omitempty"`
	DialTimeout  caddy.Duration `json:"dial_timeout,omitempty"`
	ReadTimeout  caddy.Duration `json:"read_timeout,omitempty"`
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`
	PoolSize     int            `json:"pool_size,omitempty"`
}

// options expands placeholders and maps the config onto dedupe's.
func (r *Redis) options(repl *caddy.Replacer) (dedupe.RedisOptions, error) {
	x := func(s string) string { return repl.ReplaceKnown(s, "") }
	o := dedupe.RedisOptions{
		Username: x(r.Username), Password: x(r.Password), DB: r.DB,
		MasterName: x(r.MasterName), SentinelUsername: x(r.SentinelUsername), SentinelPassword: x(r.SentinelPassword),
		Cluster: r.Cluster, TLS: r.TLS, TLSCAFile: x(r.TLSCAFile), TLSServerName: x(r.TLSServerName),
		TLSCertFile: x(r.TLSCertFile), TLSKeyFile: x(r.TLSKeyFile),
		DialTimeout: time.Duration(r.DialTimeout), ReadTimeout: time.Duration(r.ReadTimeout),
		WriteTimeout: time.Duration(r.WriteTimeout), PoolSize: r.PoolSize,
	}
	for _, a := range r.Address {
		o.Addrs = append(o.Addrs, x(a))
	}
	if len(o.Addrs) == 0 {
		return o, fmt.Errorf("redis: address is required")
	}
	return o, nil
}

// stores shares dedupe state across routes and config reloads: one memory
// store per key prefix and size (so a prefix is a namespace there too), one
// Redis client per connection config.
var stores = caddy.NewUsagePool()

type pooledMemory struct{ *dedupe.Memory }

func (p pooledMemory) Destruct() error { return p.Close() }

type pooledRedis struct{ client redis.UniversalClient }

func (p pooledRedis) Destruct() error { return p.client.Close() }

// acquire returns the store for this config and the usage pool key to
// release on Cleanup (see releaseStore). A nil store means dedupe is off.
// It also runs the store's start-up check: a Redis that is down at
// start-up is not fatal (on_store_error decides per request) and is
// logged; one too old to run the store is an error.
func (d *Dedupe) acquire(ctx caddy.Context, repl *caddy.Replacer, logger *zap.Logger) (dedupe.Store, string, error) {
	switch d.Store {
	case "memory":
		key := "memory|" + d.KeyPrefix + "|" + strconv.Itoa(d.MaxEntries)
		v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
			return pooledMemory{dedupe.NewMemory(dedupe.MemoryOptions{MaxEntries: d.MaxEntries})}, nil
		})
		if err != nil {
			return nil, "", err
		}
		return v.(pooledMemory).Memory, key, nil
	case "redis":
		o, err := d.Redis.options(repl)
		if err != nil {
			return nil, "", err
		}
		// the key covers everything the connection depends on, secrets
		// included, as a hash that is never logged
		raw, _ := json.Marshal(o)
		sum := sha256.Sum256(raw)
		key := "redis|" + hex.EncodeToString(sum[:])
		v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
			c, err := dedupe.NewRedisClient(o)
			if err != nil {
				return nil, err
			}
			return pooledRedis{c}, nil
		})
		if err != nil {
			return nil, "", err
		}
		r := dedupe.NewRedis(v.(pooledRedis).client, d.KeyPrefix, time.Duration(d.Redis.Timeout))
		switch err := r.Check(ctx); {
		case errors.Is(err, dedupe.ErrTooOld):
			stores.Delete(key)
			return nil, "", fmt.Errorf("redis: %w", err)
		case err != nil:
			logger.Warn("dedupe store not reachable at start-up", zap.Error(err))
		}
		return r, key, nil
	}
	return nil, "", nil
}

// releaseStore gives back what acquire took; "" is a no-op.
func releaseStore(poolKey string) error {
	if poolKey == "" {
		return nil
	}
	_, err := stores.Delete(poolKey)
	return err
}

func init() { redis.SetLogger(redisLogger{}) }

// redisLogger sends go-redis's own messages (a Sentinel switching
// masters, a Sentinel or a pool that cannot reach its server) to Caddy's
// log under "redis", instead of plain text on stderr. go-redis has one
// logger per process, so this also covers other modules that use it.
type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	log := caddy.Log().Named("redis")
	msg := fmt.Sprintf(format, v...)
	for _, news := range []string{"sentinel: new master", "sentinel: selected addr", "sentinel: discovered new sentinel"} {
		if strings.HasPrefix(format, news) { // the topology as it should be
			log.Info(msg)
			return
		}
	}
	log.Warn(msg)
}
