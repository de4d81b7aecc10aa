package caddymodule_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wagate/caddy-webhook/verify"
)

// TestLayouts: wherever webhook_verify is written at site level, beside
// grouping and terminal directives, it runs first: an unsigned request is
// refused (401) and nothing reaches the upstream, and a signed one is
// handled by the rest of the site.
func TestLayouts(t *testing.T) {
	up := newUpstream(t)
	verifier := "\twebhook_verify wazera {\n\t\tsecret " + secrets[verify.Wazera] + "\n\t}\n"
	for _, c := range []struct {
		name, site string
		signed     int // status of a signed request
	}{
		{"handle", verifier + "\thandle /wazera {\n\t\treverse_proxy " + up.URL + "\n\t}\n", 200},
		{"handle_path", verifier + "\thandle_path /wazera {\n\t\treverse_proxy " + up.URL + "\n\t}\n", 200},
		{"route", verifier + "\troute /wazera {\n\t\treverse_proxy " + up.URL + "\n\t}\n", 200},
		{"respond", verifier + "\trespond \"site answer\" 200\n", 200},
		{"error", verifier + "\terror \"site error\" 500\n", 500},
		{"written after reverse_proxy", "\treverse_proxy " + up.URL + "\n" + verifier, 200},
		{"inside route", "\troute {\n\t" + strings.ReplaceAll(verifier, "\n\t", "\n\t\t") + "\t\treverse_proxy " + up.URL + "\n\t}\n", 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			pretty, err := adapt(t, "http://localhost {\n"+c.site+"}\n")
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			json.Compact(&out, pretty)
			if v, first := strings.Index(out.String(), `"handler":"webhook_verify"`), firstOf(out.String(),
				`"handler":"reverse_proxy"`, `"handler":"static_response"`, `"handler":"error"`); v < 0 || v > first {
				t.Errorf("adapted config does not run webhook_verify first:\n%s", pretty)
			}
			gateway(t, c.site)
			before := len(up.received())
			e := newEvent(t, verify.Wazera, "message.read")
			unsigned := event{provider: e.provider, body: e.body, header: http.Header{"Content-Type": {"application/json"}}}
			if status, _, body := sendTo(t, "/wazera", unsigned); status != http.StatusUnauthorized {
				t.Errorf("unsigned request: %d %q, want 401", status, body)
			}
			if n := len(up.received()) - before; n != 0 {
				t.Errorf("an unsigned request reached the upstream")
			}
			if status, _, body := sendTo(t, "/wazera", e); status != c.signed {
				t.Errorf("signed request: %d %q, want %d", status, body, c.signed)
			}
		})
	}
	// abort closes the connection: an unsigned request must get its 401
	// before it
	t.Run("abort", func(t *testing.T) {
		gateway(t, verifier+"\tabort\n")
		e := newEvent(t, verify.Wazera, "message.read")
		if status, _, _ := sendTo(t, "/wazera", event{body: e.body, header: http.Header{}}); status != http.StatusUnauthorized {
			t.Errorf("unsigned request: %d, want 401", status)
		}
	})
}

func firstOf(s string, subs ...string) int {
	first := len(s)
	for _, sub := range subs {
		if i := strings.Index(s, sub); i >= 0 && i < first {
			first = i
		}
	}
	return first
}

// TestForgeableHeadersStripped: headers a client could pass off as the
// gateway's never reach the upstream: the Webhook-* headers in any
// spelling an app maps to the same name, and CloudEvents attribute
// headers; the gateway's own values arrive instead. Caddy drops headers
// with '_' or '.' by default; the site here allows them, as an operator
// may for another app, and the handler must still strip its own.
func TestForgeableHeadersStripped(t *testing.T) {
	up := newUpstream(t)
	gatewayWith(t, "\tservers {\n\t\texpected_underscore_headers webhook_* ce_*\n\t\texpected_dot_headers webhook.*\n\t}\n", allProviders(up, ""))
	e := newEvent(t, verify.Wazera, "message.read")
	forged := map[string]string{
		"Webhook-Event-Id": "forged", "Webhook_Event_Id": "forged", "webhook_event_type": "forged",
		"WEBHOOK_PROVIDER": "forged", "Webhook.Event.Type": "forged", "Webhook-Replay": "forged", "Webhook_Verified": "forged", "Ce-Id": "forged", "ce-source": "forged", "Ce_Type": "forged", "CE-SPECVERSION": "forged",
	}
	for k, v := range forged {
		e.header[k] = []string{v} // as sent, not canonicalised
	}
	if status, _, body := send(t, e); status != 200 {
		t.Fatalf("status %d %q", status, body)
	}
	got := up.received()[len(up.received())-1].header
	for name, vals := range got {
		n := strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(name))
		if strings.HasPrefix(n, "ce-") || strings.HasPrefix(n, "webhook-") && vals[0] == "forged" {
			t.Errorf("upstream received the client's %s: %q", name, vals)
		}
	}
	if got.Get("Webhook-Event-Id") != e.id || got.Get("Webhook-Provider") != "wazera" {
		t.Errorf("gateway headers: id %q provider %q", got.Get("Webhook-Event-Id"), got.Get("Webhook-Provider"))
	}
}

// TestDuplicateAnswerIsJSON: the duplicate answer parses as JSON and
// carries the event id unchanged, whatever characters the id holds.
func TestDuplicateAnswerIsJSON(t *testing.T) {
	up := newUpstream(t)
	gateway(t, "\thandle /acme {\n\t\twebhook_verify custom {\n\t\t\tsecret acme-secret\n\t\t\tcustom {\n\t\t\t\tname acme\n\t\t\t\tsignature_header X-Acme-Signature\n\t\t\t\tid_field id\n\t\t\t}\n\t\t}\n\t\treverse_proxy "+up.URL+"\n\t}\n")
	id := fmt.Sprintf("evt-%d-\U000e0001-\u2028-<&>-\"q\"", time.Now().UnixNano())
	idJSON, _ := json.Marshal(id)
	body := []byte(`{"id":` + string(idJSON) + `,"type":"order.paid"}`)
	mac := hmac.New(sha256.New, []byte("acme-secret"))
	mac.Write(body)
	e := event{body: body, header: http.Header{"X-Acme-Signature": {hex.EncodeToString(mac.Sum(nil))}}}
	if status, _, answer := sendTo(t, "/acme", e); status != 200 {
		t.Fatalf("first delivery: %d %q", status, answer)
	}
	status, _, answer := sendTo(t, "/acme", e)
	var got struct {
		Status  string `json:"status"`
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal([]byte(answer), &got); err != nil || status != 200 || got.Status != "duplicate" || got.EventID != id {
		t.Fatalf("duplicate answer %d %q (%v): want JSON with the event id %q", status, answer, err, id)
	}
}

// TestBodyOverLimitWithoutLength: a body over max_body that declares no
// length (chunked) is refused with 413 while it is read, and nothing is
// forwarded, even when it is correctly signed.
func TestBodyOverLimitWithoutLength(t *testing.T) {
	up := newUpstream(t)
	gateway(t, allProviders(up, "\t\t\tmax_body 1KiB\n"))
	v := signer(t, verify.Wazera)
	now := time.Now().UTC().Format(time.RFC3339)
	body := []byte(`{"event":"message.received","timestamp":"` + now + `","data":{"message_id":"big-` + fmt.Sprint(time.Now().UnixNano()) + `","text":"` + strings.Repeat("x", 4096) + `"}}`)
	h, _ := v.Sign(body, verify.SignOptions{})

	t.Run("chunked", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, url("/wazera"), io.MultiReader(bytes.NewReader(body))) // no length: chunked
		req.Header = h.Clone()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
	})
	t.Run("one huge chunk", func(t *testing.T) {
		// a chunk that declares more than max_body, sent by hand
		conn, err := net.Dial("tcp", fmt.Sprintf("localhost:%d", httpPort))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var req bytes.Buffer
		fmt.Fprintf(&req, "POST /wazera HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n")
		for k, vals := range h {
			fmt.Fprintf(&req, "%s: %s\r\n", k, vals[0])
		}
		fmt.Fprintf(&req, "\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
		conn.Write(req.Bytes())
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
	})
	for _, r := range up.received() {
		if len(r.body) > 1024 {
			t.Errorf("a body over max_body reached the upstream (%d bytes)", len(r.body))
		}
	}
}

// TestPrettyPayloadByteForByte: a pretty-printed body with characters that
// JSON encoders like to escape (<, >, &) reaches the upstream's
// data.payload byte for byte.
func TestPrettyPayloadByteForByte(t *testing.T) {
	up := newUpstream(t)
	gateway(t, allProviders(up, ""))
	now := time.Now().UTC().Format(time.RFC3339)
	body := []byte("{\n  \"event\": \"message.received\",\n  \"timestamp\": \"" + now + "\",\n  \"data\": {\n    \"message_id\": \"pretty-" +
		fmt.Sprint(time.Now().UnixNano()) + "\",\n    \"text\": \"<b>Fish & chips</b> > \\u003c \\/ é\"\n  }\n}")
	h, _ := signer(t, verify.Wazera).Sign(body, verify.SignOptions{})
	if status, _, answer := send(t, event{provider: verify.Wazera, body: body, header: h}); status != 200 {
		t.Fatalf("status %d %q", status, answer)
	}
	var ce struct {
		Data struct {
			Payload json.RawMessage `json:"payload"`
		}
	}
	got := up.received()[len(up.received())-1].body
	if err := json.Unmarshal(got, &ce); err != nil {
		t.Fatalf("forwarded body is not JSON: %v", err)
	}
	if !bytes.Equal(ce.Data.Payload, body) {
		t.Errorf("payload changed on the way:\nsent %s\ngot  %s", body, ce.Data.Payload)
	}
}

// panicky is a handler for the tests: it panics while panics is above
// zero (with http.ErrAbortHandler when abort is set), then passes the
// request on.
type panicky struct {
	Abort bool `json:"abort,omitempty"`
}

var panics atomic.Int32

func (panicky) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.webhook_test_panic", New: func() caddy.Module { return new(panicky) }}
}

func (p panicky) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if panics.Add(-1) >= 0 {
		if p.Abort {
			panic(http.ErrAbortHandler)
		}
		panic("test: the next handler panics")
	}
	return next.ServeHTTP(w, r)
}

func (p *panicky) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		p.Abort = d.Val() == "abort"
	}
	return nil
}

func init() {
	caddy.RegisterModule(panicky{})
	httpcaddyfile.RegisterHandlerDirective("webhook_test_panic", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		p := new(panicky)
		return p, p.UnmarshalCaddyfile(h.Dispenser)
	})
}

// TestPanicReleasesClaim: when the handler after webhook_verify panics,
// the claim is released: the provider's retry is forwarded, not answered
// 409 or as a duplicate, with either store.
func TestPanicReleasesClaim(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		for _, kind := range []string{"abort", "plain"} {
			t.Run(store+"/"+kind, func(t *testing.T) {
				up := newUpstream(t)
				dedupeCfg := ""
				if store == "redis" {
					dedupeCfg = fmt.Sprintf("\t\t\tdedupe redis {\n\t\t\t\taddress %s\n\t\t\t\tkey_prefix panic-%d:\n\t\t\t}\n", redisSrv.Addr, time.Now().UnixNano())
				}
				gateway(t, "\troute /wazera {\n\t\twebhook_verify wazera {\n\t\t\tsecret "+secrets[verify.Wazera]+"\n"+dedupeCfg+"\t\t}\n\t\twebhook_test_panic "+kind+"\n\t\treverse_proxy "+up.URL+"\n\t}\n")
				e := newEvent(t, verify.Wazera, "message.read")
				panics.Store(1)
				req, _ := http.NewRequest(http.MethodPost, url("/wazera"), bytes.NewReader(e.body))
				req.Header = e.header.Clone()
				req.Header.Del("Idempotency-Key") // no transparent resend by Go's client
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
					if resp.StatusCode < 500 {
						t.Fatalf("the panicking attempt answered %d", resp.StatusCode)
					}
				}
				forwardedOnce(t, up, e, "retry after the panic")
			})
		}
	}
}

// TestForwardedRequestIsTheGateways: what reaches the upstream besides the
// body is the gateway's too: a client's chunked trailers are dropped (they
// could name Webhook-Event-Id after the headers were checked), headers
// that describe the body as received (Content-Encoding, digests) go with
// it, and each request's Webhook-* values are its own, even when a later
// request_header edits them in place.
func TestForwardedRequestIsTheGateways(t *testing.T) {
	up := newUpstream(t)
	gateway(t, "\troute /wazera {\n\t\twebhook_verify wazera {\n\t\t\tsecret "+secrets[verify.Wazera]+"\n\t\t}\n\t\trequest_header Webhook-Provider wazera gw-wazera\n\t\treverse_proxy "+up.URL+"\n\t}\n")
	for i := range 3 {
		e := newEvent(t, verify.Wazera, "message.read")
		req, _ := http.NewRequest(http.MethodPost, url("/wazera"), io.MultiReader(bytes.NewReader(e.body))) // chunked
		req.Header = e.header.Clone()
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("Digest", "sha-256=forged")
		req.Trailer = http.Header{"Webhook-Event-Id": {"TRAILER-FORGED"}, "Ce-Type": {"TRAILER-CE"}}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		got := up.received()[len(up.received())-1]
		if len(got.trailer) != 0 {
			t.Errorf("request %d: the upstream received trailers %v", i, got.trailer)
		}
		if got.header.Get("Content-Encoding") != "" || got.header.Get("Digest") != "" {
			t.Errorf("request %d: the CloudEvent went out with the received body's Content-Encoding %q, Digest %q", i, got.header.Get("Content-Encoding"), got.header.Get("Digest"))
		}
		if p := got.header.Values("Webhook-Provider"); len(p) != 1 || p[0] != "gw-wazera" {
			t.Errorf("request %d: Webhook-Provider %q, want gw-wazera", i, p)
		}
		if got.header.Get("Webhook-Event-Id") != e.id {
			t.Errorf("request %d: Webhook-Event-Id %q, want %q", i, got.header.Get("Webhook-Event-Id"), e.id)
		}
	}
}

// TestBufferedProxy: behind reverse_proxy with request_buffers, as the
// README recommends, each verified event reaches the upstream whole, raw
// and as a CloudEvent, small and past the buffer's size, and once. A
// client's Incremental: ?1, which reverse_proxy refuses to buffer (501),
// does not reach it: the gateway read the body whole.
func TestBufferedProxy(t *testing.T) {
	up := newUpstream(t)
	route := func(path, format string) string {
		return "\thandle /" + path + " {\n\t\twebhook_verify wazera {\n\t\t\tsecret " + secrets[verify.Wazera] + "\n\t\t\tformat " + format +
			"\n\t\t}\n\t\treverse_proxy " + up.URL + " {\n\t\t\trequest_buffers 4KiB\n\t\t}\n\t}\n"
	}
	gateway(t, route("ce", "cloudevents")+route("raw", "raw"))
	for _, path := range []string{"/ce", "/raw"} {
		for _, pad := range []int{0, 10 << 10} {
			e := newEvent(t, verify.Wazera, "message.read")
			if pad > 0 {
				e.body = append(e.body[:len(e.body)-1], []byte(`,"note":"`+strings.Repeat("n", pad)+`"}`)...)
				e = e.resign(t)
				e.id = e.eventID(t)
			}
			req, _ := http.NewRequest(http.MethodPost, url(path), bytes.NewReader(e.body))
			req.Header = e.header.Clone()
			req.Header.Set("Incremental", "?1")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s, %d bytes: status %d", path, len(e.body), resp.StatusCode)
			}
			got := up.received()[len(up.received())-1]
			want := e.body
			if path == "/ce" {
				ev, err := signer(t, verify.Wazera).Verify(e.header, append([]byte(nil), e.body...))
				if err != nil {
					t.Fatal(err)
				}
				want = ev.AppendCloudEvent(nil)
			}
			if !bytes.Equal(got.body, want) {
				t.Errorf("%s, %d bytes: the upstream received %d bytes, not the event (%d bytes)", path, len(e.body), len(got.body), len(want))
			}
			if got.header.Get("Incremental") != "" {
				t.Errorf("%s: Incremental reached the upstream", path)
			}
			if n := up.count(e.id); n != 1 {
				t.Errorf("%s: the upstream received the event %d times", path, n)
			}
		}
	}
}

// TestSharedNamespaceWarns: two routes of one provider with different
// secrets on one dedupe namespace (two tenants, no key_prefix) are warned
// about at load: an id one of them verifies is a duplicate on the other.
// With a key_prefix each, no warning.
func TestSharedNamespaceWarns(t *testing.T) {
	up := newUpstream(t)
	route := func(path, secret, prefix string) string {
		return "\thandle /" + path + " {\n\t\twebhook_verify zavu {\n\t\t\tsecret " + secret + "\n" + prefix + "\t\t}\n\t\treverse_proxy " + up.URL + "\n\t}\n"
	}
	// prefixes of this run only: the log is the whole test binary's
	run := t.Name() + strconv.FormatInt(time.Now().UnixNano(), 36)
	warned := func() bool {
		return logged(t, func(entry map[string]any) bool {
			return strings.HasPrefix(fmt.Sprint(entry["msg"]), "routes with different secrets share one dedupe namespace") && entry["key_prefix"] == "shared-"+run
		})
	}
	prefix := func(p string) string { return "\t\t\tdedupe memory {\n\t\t\t\tkey_prefix " + p + "\n\t\t\t}\n" }
	gateway(t, route("t1", "whsec_tenant1", prefix("own1-"+run))+route("t2", "whsec_tenant2", prefix("own2-"+run)))
	if warned() {
		t.Fatal("warned with a key_prefix each")
	}
	gateway(t, route("t1", "whsec_tenant1", prefix("shared-"+run))+route("t2", "whsec_tenant2", prefix("shared-"+run)))
	if !warned() {
		t.Error("no warning for two secrets on one dedupe namespace")
	}
}

// TestUnansweredEventReleased: a verified event that no handler after
// webhook_verify answers (a reverse_proxy whose matcher skips it, or no
// handler at all) gets 500 with its reason, not Caddy's empty 200, which a
// provider takes as delivered: its claim is released, so the provider's
// retry is no duplicate, and the log names the event. Once the layout is
// mended, the same event goes through.
func TestUnansweredEventReleased(t *testing.T) {
	up := newUpstream(t)
	verifier := "\t\twebhook_verify wazera {\n\t\t\tsecret " + secrets[verify.Wazera] + "\n\t\t}\n"
	e := newEvent(t, verify.Wazera, "message.read")
	for _, c := range []struct{ name, site string }{
		{"a matcher skips it", "\thandle /wazera {\n" + verifier + "\t\t@never header X-Never *\n\t\treverse_proxy @never " + up.URL + "\n\t}\n"},
		{"no handler", "\thandle /wazera {\n" + verifier + "\t}\n"},
		{"only Early Hints", "\thandle /wazera {\n" + verifier + "\t\theader Link \"</s.css>; rel=preload\"\n\t\trespond 103\n\t\t@never header X-Never *\n\t\treverse_proxy @never " + up.URL + "\n\t}\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			gateway(t, c.site+"\thandle_errors {\n\t\trespond \"{err.status_code} {err.message}\"\n\t}\n")
			for attempt := range 2 {
				if status, _, body := send(t, e); status != 500 || !strings.Contains(body, "not forwarded") {
					t.Errorf("attempt %d: %d %q, want 500 and the reason", attempt+1, status, body)
				}
			}
			if !logged(t, func(entry map[string]any) bool {
				return entry["level"] == "error" && strings.Contains(fmt.Sprint(entry["msg"]), "verified event not forwarded") && entry["event_id"] == e.id
			}) {
				t.Error("no error logged naming the event")
			}
		})
	}
	if n := up.count(e.id); n != 0 {
		t.Fatalf("the upstream got the event %d times", n)
	}
	gateway(t, "\thandle /wazera {\n"+verifier+"\t\treverse_proxy "+up.URL+"\n\t}\n")
	forwardedOnce(t, up, e, "after the layout is mended")
}

// TestMatcherRefused: webhook_verify takes no matcher. With one, a request
// the matcher skips went on unverified to a reverse_proxy without it: an
// unsigned request with a forged Webhook-Event-Id reached the app. Each
// such layout is a config error now, naming the fix.
func TestMatcherRefused(t *testing.T) {
	verifier := func(matcher string) string {
		return "\twebhook_verify " + matcher + " wazera {\n\t\tsecret " + secrets[verify.Wazera] + "\n\t}\n"
	}
	for _, site := range []string{
		verifier("/wazera") + "\treverse_proxy 127.0.0.1:9\n",
		verifier("/wazera*") + "\treverse_proxy 127.0.0.1:9\n",
		"\t@signed header X-Wazera-Signature *\n\thandle /webhooks {\n" + strings.ReplaceAll(verifier("@signed"), "\n\t", "\n\t\t") + "\t\treverse_proxy 127.0.0.1:9\n\t}\n",
		"\troute {\n" + strings.ReplaceAll(verifier("/wazera"), "\n\t", "\n\t\t") + "\t\treverse_proxy 127.0.0.1:9\n\t}\n",
	} {
		if _, err := adapt(t, "http://localhost {\n"+site+"}\n"); err == nil || !strings.Contains(err.Error(), "webhook_verify takes no matcher") {
			t.Errorf("adapted, or another error (%v):\n%s", err, site)
		} else if strings.Contains(err.Error(), ":0") {
			t.Errorf("the error names no line: %v", err)
		}
	}
	// without a matcher, the same site adapts
	if _, err := adapt(t, "http://localhost {\n"+verifier("")+"\treverse_proxy 127.0.0.1:9\n}\n"); err != nil {
		t.Errorf("no matcher: %v", err)
	}
}

// TestTwoVerifiersRefused: two webhook_verify on one request (a snippet
// imported twice) refused every event, on every retry: the second found
// the signature stripped by the first (401), or with format raw the
// first's claim (409). Now the second answers 500 with its reason and
// logs the layout, the first releases its claim, and the event goes
// through once the layout is mended.
func TestTwoVerifiersRefused(t *testing.T) {
	up := newUpstream(t)
	verifier := "\t\twebhook_verify wazera {\n\t\t\tsecret " + secrets[verify.Wazera] + "\n\t\t}\n"
	gateway(t, "\thandle /wazera {\n"+verifier+verifier+"\t\treverse_proxy "+up.URL+"\n\t}\n"+
		"\thandle_errors {\n\t\trespond \"{err.status_code} {err.message}\"\n\t}\n")
	e := newEvent(t, verify.Wazera, "message.read")
	for attempt := range 2 {
		if status, _, body := send(t, e); status != 500 || !strings.Contains(body, "two webhook_verify") {
			t.Errorf("attempt %d: %d %q, want 500 and the reason", attempt+1, status, body)
		}
	}
	if !logged(t, func(entry map[string]any) bool {
		return entry["level"] == "error" && strings.Contains(fmt.Sprint(entry["msg"]), "two webhook_verify handlers")
	}) {
		t.Error("no error logged")
	}
	gateway(t, "\thandle /wazera {\n"+verifier+"\t\treverse_proxy "+up.URL+"\n\t}\n")
	forwardedOnce(t, up, e, "after the layout is mended")
}

// TestHandleResponseWritingNothing: a reverse_proxy whose handle_response
// route writes nothing leaves the answer to Caddy (an empty 200). The
// upstream's own status decides: a 2xx is delivered, committed, and the
// retry is a duplicate; anything else is answered 502 and released, so
// the provider's retry reaches the app again.
func TestHandleResponseWritingNothing(t *testing.T) {
	up := newUpstream(t)
	var refuse atomic.Bool
	up.status = func(int) int {
		if refuse.Load() {
			return 500
		}
		return 200
	}
	gateway(t, "\thandle /wazera {\n\t\twebhook_verify wazera {\n\t\t\tsecret "+secrets[verify.Wazera]+"\n\t\t}\n"+
		"\t\treverse_proxy "+up.URL+" {\n\t\t\t@any status 2xx 5xx\n\t\t\thandle_response @any {\n\t\t\t\theader X-Seen yes\n\t\t\t}\n\t\t}\n\t}\n")
	e := newEvent(t, verify.Wazera, "message.read")
	if status, _, body := send(t, e); status != 200 || strings.Contains(body, "duplicate") {
		t.Errorf("accepted by the app: %d %q, want Caddy's 200", status, body)
	}
	if status, _, body := send(t, e); status != 200 || !strings.Contains(body, "duplicate") {
		t.Errorf("the retry: %d %q, want the duplicate (committed)", status, body)
	}
	refuse.Store(true)
	f := newEvent(t, verify.Wazera, "message.read")
	for attempt := range 2 {
		if status, _, body := send(t, f); status != 502 {
			t.Errorf("refused by the app, attempt %d: %d %q, want 502", attempt+1, status, body)
		}
	}
	if n, m := up.count(e.id), up.count(f.id); n != 1 || m != 2 {
		t.Errorf("the app got the accepted event %d times (want 1) and the refused one %d (want 2: released)", n, m)
	}
}

// forwardedOnce sends e and checks that it was forwarded, not answered as
// a duplicate, and that the upstream now has it exactly once.
func forwardedOnce(t *testing.T, up *upstream, e event, when string) {
	t.Helper()
	if status, _, body := send(t, e); status != 200 || strings.Contains(body, "duplicate") {
		t.Errorf("%s: %d %q, want forwarded", when, status, body)
	}
	if n := up.count(e.id); n != 1 {
		t.Errorf("%s: the upstream got the event %d times, want 1", when, n)
	}
}
