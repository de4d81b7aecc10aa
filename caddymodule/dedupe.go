package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
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
	// MaxEntries bounds the live keys of the memory store (claims in
	// flight and delivered ids); released and expired claims do not count,
	// and the oldest live key is evicted only when the store is full (in
	// practice from about 98% of the bound: it is split in 64 shards).
	// Default 1,000,000 (about 104 MB; up to about 128 MB while many claims
	// are being released).
	MaxEntries int `json:"max_entries,omitempty"`
	// Redis configures the Redis store.
	Redis *Redis `json:"redis,omitempty"`
}

// Redis holds the options users know from other Caddy Redis modules. One
// address is a single server; several are a Cluster; with master_name they
// are Sentinels. Every string takes placeholders such as {env.REDIS_PASSWORD};
// a placeholder that is unknown or expands to nothing is a config error
// (an unset {env.REDIS_ADDR} never means a local Redis). Routes whose redis
// blocks expand to the same options share one connection and its
// pipelining, each under its own key_prefix.
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

// connection expands the placeholders and maps the options onto
// go-redis's, reading the TLS files. key names the connection in the
// store pool: a hash of everything the connection depends on (secrets and
// the TLS files' contents included), never logged.
//
// Every string option takes placeholders, and fails closed: one whose text
// is not empty but holds a placeholder that is unknown or expands to
// nothing is an error naming the option and the placeholder, so that an
// unset {env.REDIS_ADDR} cannot quietly mean a local Redis. An error never
// holds an expanded value.
func (r *Redis) connection(repl *caddy.Replacer) (opts *redis.UniversalOptions, timeout time.Duration, key string, err error) {
	var x struct {
		Addrs                                 []string
		Username, Password, MasterName        string
		SentinelUsername, SentinelPassword    string
		CAFile, ServerName, CertFile, KeyFile string
		CA, Cert, Key                         []byte
		DB, PoolSize                          int
		Cluster, TLS                          bool
		Timeout, Dial, Read, Write            time.Duration
	}
	expand := func(option, text string, into *string) {
		if err == nil {
			*into, err = expand(repl, "redis "+option, text) // names the placeholder, not a value
		}
	}
	if len(r.Address) == 0 {
		return nil, 0, "", errors.New("redis: address is required")
	}
	x.Addrs = make([]string, len(r.Address))
	for i, a := range r.Address {
		if a == "" {
			return nil, 0, "", fmt.Errorf("redis address %d is empty", i+1)
		}
		expand("address", a, &x.Addrs[i])
		if err != nil {
			return nil, 0, "", err
		}
		if !hostPort(x.Addrs[i]) {
			// the text as configured, unless it may hold a password (a
			// URL's user part or query): then not at all
			if strings.ContainsAny(a, "@/?#") {
				return nil, 0, "", fmt.Errorf("redis address %d: want host:port, not a URL (the text is not shown: it may hold a password, which goes in password)", i+1)
			}
			return nil, 0, "", fmt.Errorf("redis address %q: want host:port", a)
		}
	}
	expand("username", r.Username, &x.Username)
	expand("password", r.Password, &x.Password)
	expand("master_name", r.MasterName, &x.MasterName)
	expand("sentinel_username", r.SentinelUsername, &x.SentinelUsername)
	expand("sentinel_password", r.SentinelPassword, &x.SentinelPassword)
	expand("tls_ca_file", r.TLSCAFile, &x.CAFile)
	expand("tls_server_name", r.TLSServerName, &x.ServerName)
	expand("tls_cert_file", r.TLSCertFile, &x.CertFile)
	expand("tls_key_file", r.TLSKeyFile, &x.KeyFile)
	if err != nil {
		return nil, 0, "", err
	}
	x.DB, x.PoolSize, x.Cluster, x.TLS = r.DB, r.PoolSize, r.Cluster, r.TLS
	x.Timeout, x.Dial, x.Read, x.Write = time.Duration(r.Timeout), time.Duration(r.DialTimeout), time.Duration(r.ReadTimeout), time.Duration(r.WriteTimeout)
	cluster := x.MasterName == "" && (x.Cluster || len(x.Addrs) > 1)
	switch {
	case x.Cluster && x.MasterName != "":
		return nil, 0, "", errors.New("redis: cluster and master_name exclude each other")
	case (x.SentinelUsername != "" || x.SentinelPassword != "") && x.MasterName == "":
		return nil, 0, "", errors.New("redis: sentinel_username and sentinel_password need master_name")
	case x.DB < 0 || (x.DB != 0 && cluster):
		return nil, 0, "", errors.New("redis: db must be 0 with Redis Cluster, and never negative")
	case x.PoolSize < 0 || x.Timeout < 0 || x.Dial < 0 || x.Read < 0 || x.Write < 0:
		return nil, 0, "", errors.New("redis: pool_size and timeouts must not be negative")
	case !x.TLS && (x.CAFile != "" || x.ServerName != "" || x.CertFile != "" || x.KeyFile != ""):
		return nil, 0, "", errors.New("redis: tls_* options need tls")
	case (x.CertFile == "") != (x.KeyFile == ""):
		return nil, 0, "", errors.New("redis: set both tls_cert_file and tls_key_file, or neither")
	}
	opts = &redis.UniversalOptions{
		Addrs:                 x.Addrs,
		Username:              x.Username,
		Password:              x.Password,
		DB:                    x.DB,
		MasterName:            x.MasterName,
		SentinelUsername:      x.SentinelUsername,
		SentinelPassword:      x.SentinelPassword,
		IsClusterMode:         x.Cluster,
		DialTimeout:           x.Dial,
		ReadTimeout:           x.Read,
		WriteTimeout:          x.Write,
		PoolSize:              x.PoolSize,
		ContextTimeoutEnabled: true, // each operation's timeout bounds reads and writes too
		ClientName:            "caddy-webhook",
	}
	if x.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: x.ServerName}
		if x.CAFile != "" {
			if x.CA, err = os.ReadFile(x.CAFile); err != nil {
				return nil, 0, "", fmt.Errorf("redis tls_ca_file: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(x.CA) {
				return nil, 0, "", fmt.Errorf("redis tls_ca_file %s: no PEM certificate in it", x.CAFile)
			}
		}
		if x.CertFile != "" {
			if x.Cert, err = os.ReadFile(x.CertFile); err != nil {
				return nil, 0, "", fmt.Errorf("redis tls_cert_file: %w", err)
			}
			if x.Key, err = os.ReadFile(x.KeyFile); err != nil {
				return nil, 0, "", fmt.Errorf("redis tls_key_file: %w", err)
			}
			cert, err := tls.X509KeyPair(x.Cert, x.Key)
			if err != nil {
				return nil, 0, "", fmt.Errorf("redis tls_cert_file and tls_key_file: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts.TLSConfig = cfg
	}
	raw, _ := json.Marshal(x)
	sum := sha256.Sum256(raw)
	return opts, x.Timeout, "redis|" + hex.EncodeToString(sum[:]), nil
}

// RedisClientOptions maps r onto go-redis's options as the gateway's
// dedupe store does, placeholders such as {env.REDIS_PASSWORD} expanded
// (one unset is an error): for the caddy webhook commands that use the
// gateway's store.
func RedisClientOptions(r *Redis) (*redis.UniversalOptions, error) {
	opts, _, _, err := r.connection(caddy.NewReplacer())
	return opts, err
}

// hostPort reports whether s is host:port with a numeric port and a host
// that holds nothing a URL would (a user part, a path, a query).
func hostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || strings.ContainsAny(host, "@/?#") {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n < 65536 && port[0] != '+'
}

// stores shares dedupe state across routes and config reloads: one memory
// store per key prefix and size (so a prefix is a namespace there too), one
// Redis connection (client and pipelining) per connection config, which
// each route sees under its own key prefix.
var stores = caddy.NewUsagePool()

type pooledMemory struct {
	*dedupe.Memory
	maxEntries int // as configured when it was made
}

func (p pooledMemory) Destruct() error { return p.Close() }

type pooledRedis struct {
	store  *dedupe.Redis // no prefix: routes take a view with theirs
	client redis.UniversalClient
}

// Destruct stops the pipelining, once what was queued is sent, then
// closes the client.
func (p pooledRedis) Destruct() error {
	p.store.Close()
	return p.client.Close()
}

// checker is a store with a start-up check (the Redis store's Check).
type checker interface{ Check(context.Context) error }

// acquire returns the store for this config and the usage pool key to
// release on Cleanup (see releaseStore). A nil store means dedupe is off.
// It also runs the store's start-up check: a Redis that is down at
// start-up is not fatal (on_store_error decides per request) and is
// logged; one too old to run the store is an error.
func (d *Dedupe) acquire(ctx caddy.Context, repl *caddy.Replacer, logger *zap.Logger) (dedupe.Store, string, error) {
	var store dedupe.Store
	var key string
	switch d.Store {
	case "memory":
		// one store per key prefix, whatever its max_entries: a reload that
		// changes the bound must not forget every delivered id
		key = "memory|" + d.KeyPrefix
		v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
			return pooledMemory{dedupe.NewMemory(dedupe.MemoryOptions{MaxEntries: d.MaxEntries}), d.MaxEntries}, nil
		})
		if err != nil {
			return nil, "", err
		}
		p := v.(pooledMemory)
		if p.maxEntries != d.MaxEntries {
			logger.Warn("max_entries differs from the running memory store's: the store keeps its remembered event ids and its bound until Caddy restarts",
				zap.String("key_prefix", d.KeyPrefix), zap.Int("running", p.maxEntries), zap.Int("configured", d.MaxEntries))
		}
		store = p.Memory
	case "redis":
		if d.Redis == nil {
			return nil, "", errors.New("redis: address is required")
		}
		opts, timeout, k, err := d.Redis.connection(repl)
		if err != nil {
			return nil, "", err
		}
		key = k
		v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
			client := redis.NewUniversalClient(opts)
			return pooledRedis{store: dedupe.NewRedis(client, "", timeout), client: client}, nil
		})
		if err != nil {
			return nil, "", err
		}
		store = v.(pooledRedis).store.WithPrefix(d.KeyPrefix)
	default:
		return nil, "", nil
	}
	if c, ok := store.(checker); ok {
		switch err := c.Check(ctx); {
		case errors.Is(err, dedupe.ErrTooOld):
			stores.Delete(key)
			return nil, "", fmt.Errorf("redis: %w", err)
		case err != nil:
			logger.Warn("dedupe store not reachable at start-up", zap.Error(err))
		}
	}
	return store, key, nil
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
