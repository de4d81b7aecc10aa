package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wagate/caddy-webhook/verify"
)

// provision adapts a site with one webhook_verify route holding the given
// redis block, then provisions and validates it as `caddy run` would.
func provision(t *testing.T, redisBlock string) error {
	t.Helper()
	out, err := adapt(t, fmt.Sprintf(":8080 {\n\twebhook_verify wazera {\n\t\tsecret x\n\t\tdedupe redis {\n%s\n\t\t}\n\t}\n}\n", redisBlock))
	if err != nil {
		return err
	}
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(&cfg)
}

// TestRedisPlaceholdersFailClosed: a Redis option whose text is not empty
// but holds a placeholder that expands to nothing or is unknown is a
// config error naming the option and the placeholder, and never showing a
// value; an unset {env.REDIS_ADDR} never means 127.0.0.1:6379.
func TestRedisPlaceholdersFailClosed(t *testing.T) {
	const secret = "s3cret-redis-password"
	t.Setenv("WEBHOOK_TEST_REDIS_PASSWORD", secret)
	t.Setenv("WEBHOOK_TEST_REDIS_ADDR", redisSrv.Addr)
	t.Setenv("WEBHOOK_TEST_EMPTY", "")
	addr := "\t\t\taddress {env.WEBHOOK_TEST_REDIS_ADDR}\n\t\t\tpassword {env.WEBHOOK_TEST_REDIS_PASSWORD}\n"
	for _, tt := range []struct {
		block string
		want  []string // in the error
	}{
		{"\t\t\taddress {env.WEBHOOK_TEST_UNSET_ADDR}", []string{"redis address", "{env.WEBHOOK_TEST_UNSET_ADDR}"}},
		{"\t\t\taddress {env.WEBHOOK_TEST_UNSET_HOST}:6379", []string{"redis address", "{env.WEBHOOK_TEST_UNSET_HOST}"}},
		{"\t\t\taddress {env.WEBHOOK_TEST_EMPTY}", []string{"redis address", "{env.WEBHOOK_TEST_EMPTY}"}},
		{"\t\t\taddress {env.WEBHOOK_TEST_REDIS_ADDR} {env.WEBHOOK_TEST_UNSET_ADDR}", []string{"{env.WEBHOOK_TEST_UNSET_ADDR}"}},
		{"\t\t\taddress {redis_addr}", []string{"redis address", "{redis_addr}"}},
		{addr + "\t\t\tusername {env.WEBHOOK_TEST_UNSET_USER}", []string{"redis username", "{env.WEBHOOK_TEST_UNSET_USER}"}},
		{"\t\t\taddress {env.WEBHOOK_TEST_REDIS_ADDR}\n\t\t\tpassword {env.WEBHOOK_TEST_UNSET_PASSWORD}", []string{"redis password", "{env.WEBHOOK_TEST_UNSET_PASSWORD}"}},
		{addr + "\t\t\tmaster_name {env.WEBHOOK_TEST_UNSET_MASTER}", []string{"redis master_name", "{env.WEBHOOK_TEST_UNSET_MASTER}"}},
		{addr + "\t\t\tmaster_name m\n\t\t\tsentinel_password {env.WEBHOOK_TEST_UNSET_SP}", []string{"redis sentinel_password", "{env.WEBHOOK_TEST_UNSET_SP}"}},
		{addr + "\t\t\ttls\n\t\t\ttls_ca_file {env.WEBHOOK_TEST_UNSET_CA}", []string{"redis tls_ca_file", "{env.WEBHOOK_TEST_UNSET_CA}"}},
		{addr + "\t\t\ttls\n\t\t\ttls_server_name {env.WEBHOOK_TEST_UNSET_SNI}", []string{"redis tls_server_name", "{env.WEBHOOK_TEST_UNSET_SNI}"}},
		{"\t\t\taddress {env.WEBHOOK_TEST_REDIS_ADDR}\n\t\t\tpassword {unknown.placeholder}", []string{"redis password", "{unknown.placeholder}"}},
		{"\t\t\tpassword {env.WEBHOOK_TEST_REDIS_PASSWORD}", []string{"redis: address is required"}},
	} {
		t.Run(tt.block, func(t *testing.T) {
			err := provision(t, tt.block)
			if err == nil {
				t.Fatal("provisioned; want a config error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), redisSrv.Addr) {
				t.Errorf("the error shows an expanded value: %v", err)
			}
		})
	}
	// set, the same placeholders work
	if err := provision(t, addr); err != nil {
		t.Errorf("address and password from set variables: %v", err)
	}
}

// TestRedisOptionErrors: options that cannot go together, or TLS files
// that cannot be read, are config errors that show no secret.
func TestRedisOptionErrors(t *testing.T) {
	const secret = "hunter2-redis"
	t.Setenv("WEBHOOK_TEST_REDIS_PASSWORD", secret)
	pw := "\t\t\tpassword {env.WEBHOOK_TEST_REDIS_PASSWORD}\n"
	for _, tt := range []struct{ block, want string }{
		{pw + "\t\t\taddress a:1 b:1\n\t\t\tdb 2", "db must be 0"},
		{pw + "\t\t\taddress a:1\n\t\t\tcluster\n\t\t\tdb 2", "db must be 0"},
		{pw + "\t\t\taddress a:1\n\t\t\tcluster\n\t\t\tmaster_name m", "exclude each other"},
		{pw + "\t\t\taddress a:1\n\t\t\tsentinel_password p", "need master_name"},
		{pw + "\t\t\taddress a", "want host:port"},
		{pw + "\t\t\taddress a:1\n\t\t\ttls_ca_file /etc/ssl/ca.pem", "need tls"},
		{pw + "\t\t\taddress a:1\n\t\t\ttls\n\t\t\ttls_ca_file /nonexistent/ca.pem", "tls_ca_file"},
		{pw + "\t\t\taddress a:1\n\t\t\ttls\n\t\t\ttls_cert_file c.pem", "both tls_cert_file and tls_key_file"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			err := provision(t, tt.block)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestRedisConnectionPooled: routes that name the same Redis share one
// connection and its pipelining (a route adds no goroutines), each under
// its own key prefix.
func TestRedisConnectionPooled(t *testing.T) {
	up := newUpstream(t)
	routes := func(store string) string {
		var b strings.Builder
		for i := 0; i < 20; i++ {
			fmt.Fprintf(&b, "\thandle /r%d {\n\t\twebhook_verify zavu {\n\t\t\tsecret %s\n\t\t\tdedupe %s {\n\t\t\t\tkey_prefix pooled-%d-%d:\n%s\t\t\t}\n\t\t}\n\t\treverse_proxy %s\n\t}\n",
				i, secrets[verify.Zavu], store, httpPort, i, map[string]string{"memory": "", "redis": "\t\t\t\taddress " + redisSrv.Addr + "\n\t\t\t\ttimeout 700ms\n"}[store], up.URL)
		}
		return b.String()
	}
	settled := func() int {
		time.Sleep(300 * time.Millisecond) // the previous config's goroutines end
		return runtime.NumGoroutine()
	}
	gateway(t, routes("memory"))
	memory := settled()
	gateway(t, routes("redis"))
	// 20 routes over one connection: one set of executors, not 20
	redis := settled()
	t.Logf("goroutines: %d with 20 memory routes, %d with 20 redis routes", memory, redis)
	if redis > memory+2*4 {
		t.Errorf("goroutines: %d with 20 memory routes, %d with 20 routes over the same Redis", memory, redis)
	}
	e := newEvent(t, verify.Zavu, "message.sent")
	for _, path := range []string{"/r0", "/r7", "/r19"} {
		if status, _, body := sendTo(t, path, e); status != 200 || strings.Contains(body, "duplicate") {
			t.Errorf("%s: %d %q, want forwarded (each route has its own prefix)", path, status, body)
		}
	}
	if status, _, body := sendTo(t, "/r7", e.resign(t)); status != 200 || !strings.Contains(body, "duplicate") {
		t.Errorf("replay on /r7: %d %q, want duplicate", status, body)
	}
	for _, i := range []int{0, 7, 19} {
		key := fmt.Sprintf("pooled-%d-%d:zavu:%s", httpPort, i, e.id)
		if v, err := redisSrv.Do("GET", key); err != nil || v != "done" {
			t.Errorf("GET %s = %q %v, want done", key, v, err)
		}
	}
}
