package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/caddy-webhook/internal/redistest"
	"github.com/wagate/caddy-webhook/internal/testutil"
	"github.com/wagate/caddy-webhook/verify"
)

// TestForwardsNormalisedOnce: for every provider, a valid event reaches the
// upstream once, as a CloudEvent with the gateway's headers; its replay is
// answered 200 without being forwarded.
func TestForwardsNormalisedOnce(t *testing.T) {
	up := newUpstream(t)
	gateway(t, allProviders(up, ""))
	for _, p := range providerNames {
		t.Run(p, func(t *testing.T) {
			e := newEvent(t, p, map[string]string{
				verify.Wazera: "message.delivered", verify.Zavu: "message.inbound", verify.WAStack: "message.read",
				verify.Wazapin: "message.new", verify.Vobiz: "message.failed",
			}[p])
			id := e.id
			e.header.Set("Webhook-Event-Id", "forged-id") // a client cannot set the gateway's headers
			e.header.Set("Webhook-Provider", "forged")

			status, _, _ := send(t, e)
			if status != http.StatusOK {
				t.Fatalf("first delivery: %d", status)
			}
			if n := up.count(id); n != 1 {
				t.Fatalf("upstream got the event %d times, want 1", n)
			}
			got := up.received()[len(up.received())-1]
			if got.header.Get("Webhook-Provider") != p || got.header.Get("Webhook-Event-Id") != id {
				t.Errorf("forwarded headers: provider %q id %q", got.header.Get("Webhook-Provider"), got.header.Get("Webhook-Event-Id"))
			}
			if v := got.header.Values("Webhook-Event-Id"); len(v) != 1 {
				t.Errorf("Webhook-Event-Id values %q: the forged one was not removed", v)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/cloudevents+json" {
				t.Errorf("Content-Type %q", ct)
			}
			var ce struct {
				SpecVersion, ID, Source, Type, ProviderEvent string
				Data                                         struct {
					Payload json.RawMessage `json:"payload"`
				}
			}
			if err := json.Unmarshal(got.body, &ce); err != nil {
				t.Fatalf("forwarded body is not JSON: %v\n%s", err, got.body)
			}
			if ce.SpecVersion != "1.0" || ce.ID != id || ce.Source != p || ce.Type != got.header.Get("Webhook-Event-Type") {
				t.Errorf("CloudEvent %+v", ce)
			}
			if !bytes.Equal(ce.Data.Payload, e.body) {
				t.Errorf("payload is not the original body:\n%s\n%s", ce.Data.Payload, e.body)
			}

			// the provider's retry (re-signed where the scheme signs per attempt)
			status, hdr, body := send(t, e.resign(t))
			if status != http.StatusOK || !strings.Contains(body, `"status":"duplicate"`) || hdr.Get("Content-Type") != "application/json" {
				t.Errorf("replay: %d %q %q", status, hdr.Get("Content-Type"), body)
			}
			if n := up.count(id); n != 1 {
				t.Errorf("after the replay the upstream got the event %d times, want 1", n)
			}
		})
	}
}

// TestRejects: forged, stale, oversized, malformed and wrong-method
// requests get their status and never reach the upstream.
func TestRejects(t *testing.T) {
	up := newUpstream(t)
	gateway(t, allProviders(up, "\t\t\tmax_body 4KiB\n")+`
	handle_errors {
		respond "{err.status_code} {err.message}"
	}`)
	signedBody := func(p string, body []byte) event {
		h, _ := signer(t, p).Sign(body, verify.SignOptions{})
		return event{provider: p, body: body, header: h}
	}
	stale := newEvent(t, verify.Wazapin, "message.new")
	staleH, _ := signer(t, verify.Wazapin).Sign(stale.body, verify.SignOptions{Time: time.Now().Add(-10 * time.Minute)})
	staleWazera := []byte(`{"event":"message.read","timestamp":"` + time.Now().Add(-31*time.Hour).UTC().Format(time.RFC3339) + `","data":{}}`)
	forged := newEvent(t, verify.Zavu, "message.sent")
	forged.body = bytes.Replace(forged.body, []byte("whatsapp"), []byte("whatsapq"), 1)
	big := newEvent(t, verify.Vobiz, "message.received")
	big.body = bytes.Replace(big.body, []byte(`"text":"`), []byte(`"text":"`+strings.Repeat("x", 5000)), 1)
	big = signedBody(verify.Vobiz, big.body)
	unsigned := newEvent(t, verify.WAStack, "message.sent")
	unsigned.header.Del(verify.HeaderWAStackSignature)

	tests := []struct {
		name   string
		method string
		e      event
		status int
		reason string
	}{
		{"forged body", "POST", forged, 401, "no matching signature"},
		{"no signature", "POST", unsigned, 401, "missing signature"},
		{"stale attempt timestamp", "POST", event{provider: verify.Wazapin, body: stale.body, header: staleH}, 401, "timestamp too old"},
		{"stale event time", "POST", signedBody(verify.Wazera, staleWazera), 401, "timestamp too old"},
		{"oversized", "POST", big, 413, "body too large"},
		{"signed but not JSON", "POST", signedBody(verify.Wazera, []byte("not json")), 400, "malformed body"},
		{"signed JSON array", "POST", signedBody(verify.Vobiz, []byte(`[1,2]`)), 400, "malformed body"},
		{"wrong method", "GET", newEvent(t, verify.Wazera, "message.read"), 405, "method not allowed"},
		{"PUT", "PUT", newEvent(t, verify.Zavu, "message.sent"), 405, "method not allowed"},
	}
	before := len(up.received())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, url("/"+tt.e.provider), bytes.NewReader(tt.e.body))
			req.Header = tt.e.header.Clone()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.reason) {
				t.Errorf("got %d %q, want %d and %q", resp.StatusCode, body, tt.status, tt.reason)
			}
			if tt.status == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("405 without Allow: POST")
			}
			for _, s := range secrets {
				if strings.Contains(string(body), s) {
					t.Errorf("response contains a secret")
				}
			}
			if sig := tt.e.header.Get(verify.HeaderZavuSignature); sig != "" && strings.Contains(string(body), sig) {
				t.Errorf("response contains the signature")
			}
		})
	}
	if n := len(up.received()) - before; n != 0 {
		t.Errorf("%d rejected requests reached the upstream", n)
	}
}

// TestUpstreamFailureReleasesClaim: a 500 releases the claim so the
// provider's retry is forwarded; once a retry succeeds the event is done.
func TestUpstreamFailureReleasesClaim(t *testing.T) {
	up := newUpstream(t)
	up.status = func(n int) int {
		if n == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	gateway(t, allProviders(up, ""))
	e := newEvent(t, verify.Zavu, "message.delivered")
	id := e.id
	if status, _, _ := send(t, e); status != 500 {
		t.Fatalf("first attempt: %d, want the upstream's 500", status)
	}
	if status, _, _ := send(t, e.resign(t)); status != 200 {
		t.Fatalf("retry: %d, want 200 from the upstream", status)
	}
	status, _, body := send(t, e.resign(t))
	if status != 200 || !strings.Contains(body, "duplicate") {
		t.Fatalf("third attempt: %d %q, want a duplicate", status, body)
	}
	if n := up.count(id); n != 2 {
		t.Errorf("upstream got the event %d times, want 2 (the failure and the retry)", n)
	}
}

// TestUnreachableUpstreamReleasesClaim: reverse_proxy's own error (no
// upstream) releases the claim too.
func TestUnreachableUpstreamReleasesClaim(t *testing.T) {
	up := newUpstream(t)
	dead := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort())
	gateway(t, "\thandle /wazera {\n\t\twebhook_verify wazera {\n\t\t\tsecret "+secrets[verify.Wazera]+"\n\t\t}\n\t\treverse_proxy "+dead+"\n\t}\n"+
		"\thandle /wazera-ok {\n\t\twebhook_verify wazera {\n\t\t\tsecret "+secrets[verify.Wazera]+"\n\t\t}\n\t\treverse_proxy "+up.URL+"\n\t}\n")
	e := newEvent(t, verify.Wazera, "message.sent")
	if status, _, _ := sendTo(t, "/wazera", e); status != http.StatusBadGateway {
		t.Fatalf("dead upstream: %d, want 502", status)
	}
	if status, _, _ := sendTo(t, "/wazera-ok", e); status != 200 || up.count(e.id) != 1 {
		t.Fatalf("retry to a live upstream: %d, forwarded %d times", status, up.count(e.id))
	}
}

// TestCancelledRequestReleasesClaim: a provider that gives up (timeout)
// leaves no claim behind, in either store: its retry is forwarded.
func TestCancelledRequestReleasesClaim(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			up := newUpstream(t)
			dedupeCfg := ""
			if store == "redis" {
				dedupeCfg = fmt.Sprintf("\t\t\tdedupe redis {\n\t\t\t\taddress %s\n\t\t\t\tkey_prefix cancel-%d:\n\t\t\t}\n", redisSrv.Addr, time.Now().UnixNano())
			}
			gateway(t, allProviders(up, dedupeCfg))
			e := newEvent(t, verify.Vobiz, "message.read")
			up.mu.Lock()
			up.delay = 2 * time.Second
			up.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url("/vobiz"), bytes.NewReader(e.body))
			req.Header = e.header.Clone()
			if _, err := client.Do(req); err == nil {
				t.Fatal("the request did not time out")
			}
			cancel()
			up.mu.Lock()
			up.delay = 0
			up.mu.Unlock()
			time.Sleep(200 * time.Millisecond) // let the gateway notice and release
			if status, _, body := send(t, e); status != 200 || strings.Contains(body, "duplicate") {
				t.Fatalf("retry after the cancelled attempt: %d %q, want forwarded", status, body)
			}
		})
	}
}

// TestConcurrentCopies: 50 copies of one event at once reach the upstream
// exactly once; the rest are told it is in flight (409) or done (200).
func TestConcurrentCopies(t *testing.T) {
	up := newUpstream(t)
	up.delay = 300 * time.Millisecond
	gateway(t, allProviders(up, ""))
	e := newEvent(t, verify.WAStack, "message.delivered")
	var wg sync.WaitGroup
	var ok, inFlight, dup atomic.Int32
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, hdr, body := send(t, e)
			switch {
			case status == 200 && strings.Contains(body, "duplicate"):
				dup.Add(1)
			case status == 200:
				ok.Add(1)
			case status == 409 && hdr.Get("Retry-After") != "":
				inFlight.Add(1)
			default:
				t.Errorf("unexpected answer %d %q", status, body)
			}
		}()
	}
	wg.Wait()
	if n := up.count(e.id); n != 1 || ok.Load() != 1 {
		t.Errorf("upstream got %d, forwarded answers %d; want exactly 1 (in flight %d, duplicates %d)", n, ok.Load(), inFlight.Load(), dup.Load())
	}
}

// TestEnforceOff forwards what fails verification, marked unverified.
func TestEnforceOff(t *testing.T) {
	up := newUpstream(t)
	gateway(t, `	handle /zavu {
		webhook_verify zavu {
			secret `+secrets[verify.Zavu]+`
			enforce off
		}
		reverse_proxy `+up.URL+` {
			header_up X-Verified {http.webhook.verified}
		}
	}`)
	bad := newEvent(t, verify.Zavu, "message.sent")
	bad.header.Set(verify.HeaderZavuSignature, "sha256="+strings.Repeat("0", 64))
	bad.header.Set("Webhook-Event-Id", "forged-id") // must not pass as the gateway's
	bad.header.Set("Webhook-Event-Type", "forged.type")
	if status, _, _ := send(t, bad); status != 200 {
		t.Fatalf("status %d, want the upstream's 200", status)
	}
	good := newEvent(t, verify.Zavu, "message.sent")
	send(t, good)
	got := up.received()
	if len(got) != 2 {
		t.Fatalf("upstream got %d requests, want 2", len(got))
	}
	if got[0].header.Get("X-Verified") != "false" || !bytes.Equal(got[0].body, bad.body) {
		t.Errorf("unverified request: X-Verified %q, body changed %v", got[0].header.Get("X-Verified"), !bytes.Equal(got[0].body, bad.body))
	}
	if got[0].header.Get("Webhook-Event-Id") != "" || got[0].header.Get("Webhook-Event-Type") != "" || got[0].header.Get("Webhook-Provider") != "zavu" {
		t.Errorf("unverified request carries event headers %q %q %q", got[0].header.Get("Webhook-Event-Id"), got[0].header.Get("Webhook-Event-Type"), got[0].header.Get("Webhook-Provider"))
	}
	if got[0].header.Get(verify.HeaderZavuSignature) == "" {
		t.Error("enforce off stripped the signature the upstream may still check")
	}
	if got[1].header.Get("X-Verified") != "true" || got[1].header.Get("Content-Type") != "application/cloudevents+json" {
		t.Errorf("verified request: X-Verified %q, content type %q", got[1].header.Get("X-Verified"), got[1].header.Get("Content-Type"))
	}
}

// TestDedupeOffWarns: with dedupe off a replay is forwarded again, and
// the operator is told so in the log when the config loads.
func TestDedupeOffWarns(t *testing.T) {
	up := newUpstream(t)
	gateway(t, `	handle /vobiz {
		webhook_verify vobiz {
			secret `+secrets[verify.Vobiz]+`
			dedupe off
		}
		reverse_proxy `+up.URL+`
	}`)
	e := newEvent(t, verify.Vobiz, "message.delivered")
	for range 2 {
		if status, _, body := send(t, e); status != 200 {
			t.Fatalf("status %d %s, want 200", status, body)
		}
	}
	if n := up.count(e.id); n != 2 {
		t.Errorf("upstream got the event %d times with dedupe off, want 2", n)
	}
	warned := logged(t, func(entry map[string]any) bool {
		return entry["level"] == "warn" && entry["provider"] == "vobiz" && strings.HasPrefix(fmt.Sprint(entry["msg"]), "dedupe is off")
	})
	if !warned {
		t.Error("no warning in the log that dedupe is off")
	}
}

// TestRawFormat forwards the original body with the gateway's headers.
func TestRawFormat(t *testing.T) {
	up := newUpstream(t)
	gateway(t, allProviders(up, "\t\t\tformat raw\n"))
	e := newEvent(t, verify.Wazapin, "message.status_update")
	if status, _, _ := send(t, e); status != 200 {
		t.Fatal(status)
	}
	got := up.received()[0]
	if !bytes.Equal(got.body, e.body) || got.header.Get("Webhook-Event-Type") != "message.delivered" || got.header.Get("Webhook-Id") == "" {
		t.Errorf("raw forward: body equal %v, type %q, webhook-id %q", bytes.Equal(got.body, e.body), got.header.Get("Webhook-Event-Type"), got.header.Get("Webhook-Id"))
	}
}

// TestRedisStoreErrors: with Redis down, "open" forwards and "closed"
// answers 503 with Retry-After; both recover when Redis returns.
func TestRedisStoreErrors(t *testing.T) {
	up := newUpstream(t)
	site := func(mode string) string {
		return zavuRedisRoute("e2e", "300ms", "\t\t\ton_store_error "+mode+"\n", up.URL)
	}
	for _, mode := range []string{"open", "closed"} {
		t.Run(mode, func(t *testing.T) {
			gateway(t, site(mode))
			e := newEvent(t, verify.Zavu, "message.queued")
			if status, _, _ := send(t, e); status != 200 {
				t.Fatalf("redis up: %d", status)
			}
			redisSrv.Stop()
			down := newEvent(t, verify.Zavu, "message.sent")
			status, hdr, _ := send(t, down)
			switch mode {
			case "open":
				if status != 200 || up.count(down.id) != 1 {
					t.Errorf("open, redis down: %d, forwarded %d times; want forwarded", status, up.count(down.id))
				}
			case "closed":
				if status != 503 || hdr.Get("Retry-After") == "" || up.count(down.id) != 0 {
					t.Errorf("closed, redis down: %d, Retry-After %q, forwarded %d times; want 503, not forwarded", status, hdr.Get("Retry-After"), up.count(down.id))
				}
			}
			if err := redisSrv.Restart(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				after := newEvent(t, verify.Zavu, "message.delivered")
				if status, _, _ := send(t, after); status == 200 && up.count(after.id) == 1 {
					if st, _, body := send(t, after.resign(t)); st != 200 || !strings.Contains(body, "duplicate") {
						t.Errorf("after recovery the replay was not caught: %d %q", st, body)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("gateway did not recover after Redis came back")
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestRedisSentinel: with master_name, the gateway finds the master
// through a real Sentinel, drops a replay, and go-redis's own messages
// reach Caddy's log, not stderr.
func TestRedisSentinel(t *testing.T) {
	sen, err := redistest.StartSentinel("webhooks")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sen.Close)
	up := newUpstream(t)
	gateway(t, fmt.Sprintf(`	handle /wastack {
		webhook_verify wastack {
			secret %s
			on_store_error closed
			dedupe redis {
				address %s
				master_name %s
			}
		}
		reverse_proxy %s
	}`, secrets[verify.WAStack], sen.Sentinel.Addr, sen.Name, up.URL))
	e := newEvent(t, verify.WAStack, "message.received")
	if status, _, body := send(t, e); status != 200 {
		t.Fatalf("first delivery: %d %s", status, body)
	}
	if status, _, body := send(t, e); status != 200 || !strings.Contains(body, "duplicate") {
		t.Errorf("replay: %d %q, want 200 duplicate", status, body)
	}
	if n := up.count(e.id); n != 1 {
		t.Errorf("upstream got the event %d times, want 1", n)
	}
	if keys, _ := sen.Master.Do("DBSIZE"); keys == "0" {
		t.Error("the master the Sentinel names holds no key")
	}
	time.Sleep(100 * time.Millisecond)
	named := logged(t, func(entry map[string]any) bool {
		return entry["logger"] == "redis" && strings.Contains(fmt.Sprint(entry["msg"]), sen.Master.Addr)
	})
	if !named {
		t.Errorf("no go-redis message naming the master %s in Caddy's log", sen.Master.Addr)
	}
}

// TestReloadsDoNotLeak: reloading a Redis-backed config many times leaves
// no goroutines behind (each store's pipeline executors stop on Cleanup).
func TestReloadsDoNotLeak(t *testing.T) {
	up := newUpstream(t)
	// each reload differs (Caddy skips one that changes nothing)
	site := func(i int) string {
		return fmt.Sprintf("\t\t\tdedupe redis {\n\t\t\t\taddress %s\n\t\t\t}\n\t\t\tin_flight_ttl %ds\n", redisSrv.Addr, 30+i)
	}
	gateway(t, allProviders(up, site(0)))
	send(t, newEvent(t, verify.Zavu, "message.sent"))
	time.Sleep(200 * time.Millisecond)
	before := runtime.NumGoroutine()
	for i := 1; i <= 10; i++ {
		gateway(t, allProviders(up, site(i)))
	}
	send(t, newEvent(t, verify.Zavu, "message.sent"))
	time.Sleep(500 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before+10 {
		t.Errorf("goroutines %d before 10 reloads, %d after", before, after)
	}
}

// TestRedisSharedAcrossRoutes: two routes naming the same Redis share the
// dedupe state (as two gateway instances would).
func TestRedisSharedAcrossRoutes(t *testing.T) {
	up := newUpstream(t)
	route := func(path string) string {
		return fmt.Sprintf(`	handle %s {
		webhook_verify vobiz {
			secret %s
			dedupe redis {
				address %s
				key_prefix shared-%d:
			}
		}
		reverse_proxy %s
	}
`, path, secrets[verify.Vobiz], redisSrv.Addr, httpPort, up.URL)
	}
	gateway(t, route("/a")+route("/b"))
	e := newEvent(t, verify.Vobiz, "message.sent")
	if status, _, _ := sendTo(t, "/a", e); status != 200 {
		t.Fatal(status)
	}
	if status, _, body := sendTo(t, "/b", e); status != 200 || !strings.Contains(body, "duplicate") {
		t.Errorf("second instance: %d %q, want duplicate", status, body)
	}
}

// TestReloadUnderTraffic: changing the secret list while events flow loses
// none, fails none, and forwards each exactly once.
func TestReloadUnderTraffic(t *testing.T) {
	up := newUpstream(t)
	site := func(extraSecret string) string {
		return allProviders(up, extraSecret)
	}
	tester := gateway(t, site(""))
	var sent []event
	var mu sync.Mutex
	stop := make(chan struct{})
	var failures atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				e := newEvent(t, providerNames[(w+i)%len(providerNames)], map[string]string{
					verify.Wazera: "message.sent", verify.Zavu: "message.sent", verify.WAStack: "message.sent",
					verify.Wazapin: "message.sent", verify.Vobiz: "message.sent",
				}[providerNames[(w+i)%len(providerNames)]])
				if status, _, body := send(t, e); status != 200 {
					failures.Add(1)
					t.Errorf("during reload: %d %q", status, body)
				}
				mu.Lock()
				sent = append(sent, e)
				mu.Unlock()
			}
		}(w)
	}
	for i := 0; i < 4; i++ {
		time.Sleep(300 * time.Millisecond)
		extra := ""
		if i%2 == 0 {
			extra = "\t\t\tsecret whsec_cm90YXRlZC1pbi0" + fmt.Sprint(i) + "\n" // valid for every provider
		}
		tester.InitServer(fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	auto_https off
	grace_period 5s
}
http://localhost:%d {
%s
}
`, adminPort, httpPort, httpPort, site(extra)), "caddyfile")
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(sent) < 20 {
		t.Fatalf("only %d events sent", len(sent))
	}
	counts := up.counts()
	for _, e := range sent {
		if n := counts[e.id]; n != 1 {
			t.Errorf("event %s forwarded %d times", e.id, n)
		}
	}
	t.Logf("%d events across 4 reloads, %d failures", len(sent), failures.Load())
}

// TestLogsAndMetrics: one log line per rejected and duplicate request with
// provider, reason, event id and remote ip, never a secret or signature;
// counters in Caddy's registry.
func TestLogsAndMetrics(t *testing.T) {
	up := newUpstream(t)
	gateway(t, allProviders(up, ""))
	// metric sums the series whose name and labels start with name
	metric := func(name string) float64 {
		resp, err := client.Get(fmt.Sprintf("http://localhost:%d/metrics", adminPort))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var sum float64
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, name) && !strings.HasPrefix(line, "#") {
				var v float64
				fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
				sum += v
			}
		}
		return sum
	}
	verified := `caddy_webhook_requests_total{outcome="verified",provider="wazera"}`
	duplicate := `caddy_webhook_requests_total{outcome="duplicate",provider="wazera"}`
	rejectedOutcome := `caddy_webhook_requests_total{outcome="rejected",provider="wazera"}`
	// requests_total is a partition: every request counted once
	allOutcomes := `caddy_webhook_requests_total{`
	noMatch := `caddy_webhook_rejected_total{provider="wazera",reason="no_match"}`
	forwarded := `caddy_webhook_forwarded_total{provider="wazera",status="2xx"}`
	before := map[string]float64{}
	for _, m := range []string{verified, duplicate, rejectedOutcome, allOutcomes, noMatch, forwarded} {
		before[m] = metric(m)
	}

	e := newEvent(t, verify.Wazera, "message.read")
	send(t, e)
	send(t, e)
	forged := e
	forged.header = e.header.Clone()
	sig := strings.Repeat("ab", 32)
	forged.header.Set(verify.HeaderWazeraSignature, sig)
	send(t, forged)

	for m, want := range map[string]float64{verified: 1, duplicate: 1, rejectedOutcome: 1, allOutcomes: 3, noMatch: 1, forwarded: 1} {
		if got := metric(m) - before[m]; got != want {
			t.Errorf("%s rose by %v, want %v", m, got, want)
		}
	}
	if metric(`caddy_webhook_verify_duration_seconds_count{provider="wazera"}`) == 0 {
		t.Error("no verify latency observed")
	}

	time.Sleep(100 * time.Millisecond)
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	id := e.id
	var rejected, dup int
	for _, line := range strings.Split(string(logs), "\n") {
		if strings.Contains(line, secrets[verify.Wazera]) || strings.Contains(line, sig) || strings.Contains(line, e.header.Get(verify.HeaderWazeraSignature)) {
			t.Errorf("log line holds a secret or a signature: %s", line)
		}
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) != nil {
			continue
		}
		switch entry["msg"] {
		case "webhook rejected":
			if entry["provider"] == "wazera" && entry["reason"] == "no_match" && entry["remote_ip"] == "127.0.0.1" {
				rejected++
			}
		case "webhook duplicate":
			if entry["event_id"] == id && entry["provider"] == "wazera" && entry["remote_ip"] == "127.0.0.1" {
				dup++
			}
		}
	}
	if rejected < 1 || dup != 1 {
		t.Errorf("log lines: %d rejected, %d duplicate for this event; want at least 1 and 1", rejected, dup)
	}
}

// TestJSONConfigCustomProvider loads a JSON config (no Caddyfile) with a
// custom Slack-style provider and a Standard Webhooks sender.
func TestJSONConfigCustomProvider(t *testing.T) {
	up := newUpstream(t)
	custom := verify.Custom{
		Name: "acme", SignatureHeader: "X-Acme-Signature", SignaturePrefix: "v0=",
		Signed: "v0:{timestamp}:{body}", TimestampHeader: "X-Acme-Timestamp", TimestampKind: verify.TimestampAttempt,
		IDField: "event_id", TypeField: "type",
	}
	customJSON, _ := json.Marshal(custom)
	cfg := fmt.Sprintf(`{
	"admin": {"listen": "localhost:%d"},
	"apps": {"http": {"servers": {"srv0": {
		"listen": [":%d"],
		"automatic_https": {"disable": true},
		"routes": [
			{"match": [{"path": ["/acme"]}], "handle": [
				{"handler": "webhook_verify", "provider": "custom", "secrets": ["acme-secret"], "custom": %s,
				 "dedupe": {"store": "memory", "key_prefix": "json:"}, "dedupe_ttl": "1h", "in_flight_ttl": "30s"},
				{"handler": "reverse_proxy", "upstreams": [{"dial": "%s"}]}
			]},
			{"match": [{"path": ["/partner"]}], "handle": [
				{"handler": "webhook_verify", "provider": "standard", "name": "partner", "secrets": ["%s"], "max_body": 2048},
				{"handler": "reverse_proxy", "upstreams": [{"dial": "%s"}]}
			]}
		]
	}}}}
}`, adminPort, httpPort, customJSON, strings.TrimPrefix(up.URL, "http://"), secrets[verify.Wazapin], strings.TrimPrefix(up.URL, "http://"))
	tester := caddytestTester(t)
	tester.InitServer(cfg, "json")

	acme, err := verify.NewCustom(custom, verify.Options{Secrets: []string{"acme-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"event_id":"ev_` + fmt.Sprint(time.Now().UnixNano()) + `","type":"order.paid","data":{"status":"paid"}}`)
	h, _ := acme.Sign(body, verify.SignOptions{})
	if status, _, _ := sendTo(t, "/acme", event{provider: "acme", body: body, header: h}); status != 200 {
		t.Fatalf("custom provider: %d", status)
	}
	got := up.received()[0]
	if got.header.Get("Webhook-Provider") != "acme" || got.header.Get("Webhook-Event-Type") != "order.paid" {
		t.Errorf("custom provider headers: %v", got.header)
	}
	h.Set("X-Acme-Timestamp", fmt.Sprint(time.Now().Unix()+1)) // the timestamp is signed
	if status, _, _ := sendTo(t, "/acme", event{provider: "acme", body: body, header: h}); status != 401 {
		t.Errorf("custom provider, timestamp changed: %d, want 401", status)
	}

	partner := newEvent(t, verify.Wazapin, "contact.updated")
	h2, _ := signer(t, verify.Wazapin).Sign(partner.body, verify.SignOptions{})
	if status, _, _ := sendTo(t, "/partner", event{body: partner.body, header: h2}); status != 200 {
		t.Fatalf("standard provider: %d", status)
	}
	if p := up.received()[1].header.Get("Webhook-Provider"); p != "partner" {
		t.Errorf("standard provider name %q", p)
	}
}

// TestLongTextAndWhitespace: a text long enough that the CloudEvent head
// does not fit before the body, and a body with surrounding whitespace,
// are forwarded as valid events carrying the body's JSON unchanged.
func TestLongTextAndWhitespace(t *testing.T) {
	up := newUpstream(t)
	gateway(t, allProviders(up, ""))
	v := signer(t, verify.Wazera)
	now := time.Now().UTC().Format(time.RFC3339)
	for name, body := range map[string]string{
		"long text": `{"event":"message.received","timestamp":"` + now + `","data":{"message_id":"m-` + fmt.Sprint(time.Now().UnixNano()) + `","text":"` + strings.Repeat(`Halo kak \"x\" é ✓ `, 300) + `"}}`,
		// over 64 KiB the event is built in place around the body, and a
		// head longer than the room before it goes out as three readers
		"long text, large body": `{"event":"message.received","timestamp":"` + now + `","data":{"message_id":"l-` + fmt.Sprint(time.Now().UnixNano()) + `","text":"` + strings.Repeat(`Halo kak \"x\" é ✓ `, 300) + `"},"note":"` + strings.Repeat("n", 80<<10) + `"}`,
		"large body":            `{"event":"message.received","timestamp":"` + now + `","data":{"message_id":"b-` + fmt.Sprint(time.Now().UnixNano()) + `","text":"hi"},"note":"` + strings.Repeat("n", 80<<10) + `"}`,
		"whitespace":            "\n  {\"event\":\"message.read\",\"timestamp\":\"" + now + "\",\"data\":{\"message_id\":\"w-" + fmt.Sprint(time.Now().UnixNano()) + "\"}}\r\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			h, _ := v.Sign([]byte(body), verify.SignOptions{})
			before := len(up.received())
			if status, _, _ := send(t, event{provider: verify.Wazera, body: []byte(body), header: h}); status != 200 {
				t.Fatalf("status %d", status)
			}
			got := up.received()[before]
			var ce struct {
				Data struct {
					Text    string          `json:"text"`
					Payload json.RawMessage `json:"payload"`
				}
			}
			if err := json.Unmarshal(got.body, &ce); err != nil {
				t.Fatalf("forwarded body is not JSON: %v", err)
			}
			if string(ce.Data.Payload) != strings.TrimSpace(body) {
				t.Errorf("payload changed")
			}
			if got.header.Get("Content-Length") != fmt.Sprint(len(got.body)) {
				t.Errorf("Content-Length %s for %d bytes", got.header.Get("Content-Length"), len(got.body))
			}
		})
	}
}

// TestRedisSettleDoesNotHoldTheAnswer: with Redis, the upstream's answer
// goes to the provider before the claim is committed, so a slow commit
// (Redis refusing writes for a second, as a failover or a stalled server
// would) does not delay it; the commit still lands before the handler
// returns, and a resend afterwards is answered as a duplicate.
func TestRedisSettleDoesNotHoldTheAnswer(t *testing.T) {
	admin := redis.NewClient(&redis.Options{Addr: redisSrv.Addr})
	defer admin.Close()
	const pause = 1500 * time.Millisecond
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		// the claim is in; the commit, after this answer, will wait
		if err := admin.Do(r.Context(), "CLIENT", "PAUSE", pause.Milliseconds(), "WRITE").Err(); err != nil {
			t.Error(err)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer up.Close()
	gateway(t, zavuRedisRoute("settle", "5s", "", up.URL))
	e := newEvent(t, verify.Zavu, "message.delivered")
	start := time.Now()
	status, _, _ := send(t, e)
	took := time.Since(start)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	if took > pause/2 {
		t.Errorf("the answer took %v: it waited for the commit, held %v by Redis", took, pause)
	}
	time.Sleep(pause + 500*time.Millisecond) // the pause ends, the commit lands
	if st, _, body := send(t, e.resign(t)); st != 200 || !strings.Contains(body, "duplicate") {
		t.Errorf("a resend after the commit: %d %q, want 200 duplicate", st, body)
	}
}
