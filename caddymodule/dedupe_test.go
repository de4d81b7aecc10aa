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
	t.Setenv("WEBHOOK_TEST_REDIS_USER_ADDR", secret+"@127.0.0.1:6379")
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
		// a URL with the password in it, written as an address: not shown
		{"\t\t\taddress redis://default:" + secret + "@127.0.0.1:6379", []string{"want host:port, not a URL"}},
		{"\t\t\taddress :" + secret + "@127.0.0.1", []string{"want host:port, not a URL"}},
		{"\t\t\taddress 127.0.0.1:6379?password=" + secret, []string{"want host:port, not a URL"}},
		{"\t\t\taddress 127.0.0.1:6379/" + secret, []string{"want host:port, not a URL"}},
		{"\t\t\taddress 127.0.0.1:sixty", []string{`redis address "127.0.0.1:sixty": want host:port`}},
		// a user part left in an address from a variable: refused, not shown
		{"\t\t\taddress {env.WEBHOOK_TEST_REDIS_USER_ADDR}", []string{"want host:port", "{env.WEBHOOK_TEST_REDIS_USER_ADDR}"}},
		// part of a literal password that looks like a placeholder: not shown
		{"\t\t\taddress {env.WEBHOOK_TEST_REDIS_ADDR}\n\t\t\tpassword MYPASS{abc.def}TAIL", []string{"redis password (a placeholder in it)"}},
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
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), redisSrv.Addr) || strings.Contains(err.Error(), "abc.def") {
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

// TestDedupeOptionsOfAnotherStore: in JSON, an option of another store
// than the one in use is a config error, not ignored: a redis block
// without "store": "redis" (each instance would deduplicate alone, in
// memory), or beside "store": "memory" or "off"; max_entries with Redis;
// key_prefix with dedupe off.
func TestDedupeOptionsOfAnotherStore(t *testing.T) {
	for _, tc := range []struct{ dedupe, want string }{
		{`{"redis": {"address": ["127.0.0.1:1"]}, "key_prefix": "tenant-a:"}`, `a redis block with store "memory"`},
		{`{"store": "memory", "redis": {"address": ["127.0.0.1:1"]}}`, `a redis block with store "memory"`},
		{`{"store": "off", "redis": {"address": ["127.0.0.1:1"]}}`, `a redis block with store "off"`},
		{`{"store": "redis", "redis": {"address": ["127.0.0.1:1"]}, "max_entries": 5000}`, `max_entries is an option of the memory store`},
		{`{"store": "off", "key_prefix": "a:"}`, `key_prefix with store off`},
	} {
		cfg := `{"apps": {"http": {"servers": {"s": {"listen": [":0"], "routes": [{"handle": [
			{"handler": "webhook_verify", "provider": "wazera", "secrets": ["s"], "dedupe": ` + tc.dedupe + `},
			{"handler": "static_response", "status_code": 200}]}]}}}}}`
		var c caddy.Config
		if err := json.Unmarshal([]byte(cfg), &c); err != nil {
			t.Fatal(err)
		}
		if err := caddy.Validate(&c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.dedupe, err, tc.want)
		}
	}
}

// TestMemoryStoreSurvivesResize: a reload that changes only max_entries
// keeps the memory store, so an event delivered before it is still a
// duplicate after it (it was forwarded again); the new bound waits for a
// restart, and the log says so.
func TestMemoryStoreSurvivesResize(t *testing.T) {
	up := newUpstream(t)
	site := func(dedupe string) string {
		return "\thandle /wazera {\n\t\twebhook_verify wazera {\n\t\t\tsecret " + secrets[verify.Wazera] + "\n" + dedupe +
			"\t\t}\n\t\treverse_proxy " + up.URL + "\n\t}\n"
	}
	prefix := fmt.Sprintf("resize-%d:", time.Now().UnixNano())
	gateway(t, site("\t\t\tdedupe memory {\n\t\t\t\tkey_prefix "+prefix+"\n\t\t\t}\n"))
	e := newEvent(t, verify.Wazera, "message.read")
	if status, _, body := send(t, e); status != 200 || strings.Contains(body, "duplicate") {
		t.Fatalf("first delivery: %d %q", status, body)
	}
	gateway(t, site("\t\t\tdedupe memory {\n\t\t\t\tkey_prefix "+prefix+"\n\t\t\t\tmax_entries 2000000\n\t\t\t}\n"))
	if status, _, body := send(t, e); status != 200 || !strings.Contains(body, "duplicate") {
		t.Errorf("after a reload that changed max_entries: %d %q, want the duplicate", status, body)
	}
	if n := up.count(e.id); n != 1 {
		t.Errorf("the upstream got the event %d times, want 1", n)
	}
	if !logged(t, func(entry map[string]any) bool {
		return entry["level"] == "warn" && strings.Contains(fmt.Sprint(entry["msg"]), "max_entries differs") && entry["key_prefix"] == prefix
	}) {
		t.Error("no warning that the new max_entries waits for a restart")
	}
}
