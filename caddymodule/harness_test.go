package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/wagate/caddy-webhook/caddymodule"
	"github.com/wagate/caddy-webhook/internal/redistest"
	"github.com/wagate/caddy-webhook/internal/testutil"
	"github.com/wagate/caddy-webhook/verify"
	"github.com/wagate/caddy-webhook/verify/samples"
)

// One in-process Caddy per test binary (caddytest's design), on ports of
// its own so that test packages running at once never share an admin API.
var (
	adminPort, httpPort int
	logFile             string
	redisSrv            *redistest.Server
)

func TestMain(m *testing.M) {
	adminPort, httpPort = testutil.FreePort(), testutil.FreePort()
	caddytest.Default.AdminPort = adminPort
	dir, _ := os.MkdirTemp("", "webhook-e2e-")
	logFile = filepath.Join(dir, "caddy.log")
	var err error
	if redisSrv, err = redistest.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "redis:", err)
		os.Exit(1)
	}
	code := m.Run()
	redisSrv.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// noSkip turns caddytest's skips (missing prerequisites, -short) into
// failures: an end-to-end test that did not run must not pass.
type noSkip struct{ testing.TB }

func (n noSkip) Skip(args ...any) {
	n.TB.Helper()
	n.TB.Fatal(append([]any{"caddytest would skip:"}, args...)...)
}

func (n noSkip) Skipf(format string, args ...any) {
	n.TB.Helper()
	n.TB.Fatalf("caddytest would skip: "+format, args...)
}

func (n noSkip) SkipNow() {
	n.TB.Helper()
	n.TB.Fatal("caddytest would skip")
}

// upstream is the customer's app: it records what reaches it.
type upstream struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	status func(n int) int // status of the n-th request (from 0); default 200
	delay  time.Duration
}

type received struct {
	path    string
	header  http.Header
	trailer http.Header
	body    []byte
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		n := len(u.got)
		u.got = append(u.got, received{path: r.URL.Path, header: r.Header.Clone(), trailer: r.Trailer.Clone(), body: body})
		status, delay := http.StatusOK, u.delay
		if u.status != nil {
			status = u.status(n)
		}
		u.mu.Unlock()
		time.Sleep(delay)
		w.WriteHeader(status)
		fmt.Fprintf(w, "upstream %d", status)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) received() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]received(nil), u.got...)
}

// count returns how many requests carried the given event id.
func (u *upstream) count(eventID string) int { return u.counts()[eventID] }

// counts returns how many requests carried each event id.
func (u *upstream) counts() map[string]int {
	m := map[string]int{}
	for _, r := range u.received() {
		m[r.header.Get("Webhook-Event-Id")]++
	}
	return m
}

// gateway loads a Caddyfile site body into the in-process Caddy, with
// global options for the test ports and a JSON log file.
func gateway(t *testing.T, site string) *caddytest.Tester {
	t.Helper()
	return gatewayWith(t, "", site)
}

// gatewayWith is gateway with more global options.
func gatewayWith(t *testing.T, global, site string) *caddytest.Tester {
	t.Helper()
	cfg := fmt.Sprintf(`{
%s
	admin localhost:%d
	http_port %d
	auto_https off
	grace_period 5s
	log {
		output file %s
		format filter {
			wrap json
%s		}
		level DEBUG
	}
}
http://localhost:%d {
%s
}
`, global, adminPort, httpPort, logFile, signatureLogFilter, httpPort, site)
	tester := caddytestTester(t)
	tester.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	// the previous config's server closes its idle keep-alive connections
	// as it shuts down; a request written on one in that instant is reset
	// (Go's transport resends it only when the reset comes on the read).
	// Each config starts on fresh connections.
	client.CloseIdleConnections()
	return tester
}

// signatureLogFilter removes the providers' signature headers from Caddy's
// own request logs (access, error and debug), which log headers as they
// arrived. Caddyfile.example carries the same lines (TestExampleFiltersSignatures).
const signatureLogFilter = `			request>headers>X-Wazera-Signature delete
			request>headers>X-Zavu-Signature delete
			request>headers>X-Wastack-Signature delete
			request>headers>Webhook-Signature delete
			request>headers>Svix-Signature delete
			request>headers>X-Vobiz-Signature delete
			request>headers>X-Webhook-Signature delete
`

// caddytestTester is a caddytest.Tester that fails where caddytest would skip.
func caddytestTester(t *testing.T) *caddytest.Tester {
	return caddytest.NewTester(noSkip{t})
}

func url(path string) string { return fmt.Sprintf("http://localhost:%d%s", httpPort, path) }

// Secrets of the test gateway, per provider.
var secrets = map[string]string{
	verify.Wazera:  "wazera-test-secret",
	verify.Zavu:    "whsec_zavu-test-secret",
	verify.WAStack: "wastack-test-secret",
	verify.Wazapin: "whsec_d2F6YXBpbi10ZXN0LXNlY3JldA==",
	verify.Vobiz:   "vobiz-test-secret",
}

var providerNames = []string{verify.Wazera, verify.Zavu, verify.WAStack, verify.Wazapin, verify.Vobiz}

// allProviders is a site with every provider on its own path.
func allProviders(up *upstream, extra string) string {
	var b strings.Builder
	for _, p := range providerNames {
		fmt.Fprintf(&b, "\thandle /%s {\n\t\twebhook_verify %s {\n\t\t\tsecret %s\n%s\t\t}\n\t\treverse_proxy %s\n\t}\n",
			p, p, secrets[p], extra, up.URL)
	}
	return b.String()
}

// event is one signed delivery of a sample event.
type event struct {
	provider string
	body     []byte
	header   http.Header
	id       string // the id the gateway gives it, known when it is built
}

func signer(t testing.TB, provider string) *verify.Verifier {
	v, err := verify.New(provider, verify.Options{Secrets: []string{secrets[provider]}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newEvent builds a fresh, correctly signed sample event of the provider.
func newEvent(t testing.TB, provider, eventType string) event {
	t.Helper()
	vals := samples.Fresh(time.Now().Add(-time.Second))
	body, err := samples.Body(provider, eventType, vals)
	if err != nil {
		t.Fatal(err)
	}
	h, err := signer(t, provider).Sign(body, verify.SignOptions{ID: "msg_" + vals.ID})
	if err != nil {
		t.Fatal(err)
	}
	h.Set("Content-Type", "application/json")
	e := event{provider: provider, body: body, header: h}
	e.id = e.eventID(t)
	// as webhook senders do: lets Go's transport resend the POST when a
	// reused keep-alive connection turns out closed (as on a reload)
	h.Set("Idempotency-Key", e.id)
	return e
}

// resign signs the event again, as a provider does on a retry (new
// attempt timestamp, same id and body).
func (e event) resign(t testing.TB) event {
	id := e.header.Get("Webhook-Id")
	h, err := signer(t, e.provider).Sign(e.body, verify.SignOptions{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Idempotency-Key", e.id)
	return event{provider: e.provider, body: e.body, header: h, id: e.id}
}

// eventID is the id the gateway gives the event.
func (e event) eventID(t testing.TB) string {
	ev, err := signer(t, e.provider).Verify(e.header, e.body)
	if err != nil {
		t.Fatal(err)
	}
	return ev.ID
}

var client = &http.Client{Timeout: 10 * time.Second}

// send posts the event to its provider's path.
func send(t testing.TB, e event) (int, http.Header, string) {
	t.Helper()
	return sendTo(t, "/"+e.provider, e)
}

func sendTo(t testing.TB, path string, e event) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url(path), bytes.NewReader(e.body))
	req.Header = e.header.Clone()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// logged reports whether Caddy's JSON log holds an entry that match accepts.
func logged(t *testing.T, match func(entry map[string]any) bool) bool {
	t.Helper()
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(logs), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil && match(entry) {
			return true
		}
	}
	return false
}

// zavuRedisRoute is the site body the Redis end-to-end tests share:
// /zavu verified with Redis dedupe under a key prefix of its own (prefix
// and a unique suffix) and the store timeout given, with extra options
// (whole lines, such as on_store_error), forwarded to upstream.
func zavuRedisRoute(prefix, timeout, extra, upstream string) string {
	return fmt.Sprintf(`	handle /zavu {
		webhook_verify zavu {
			secret %s
%s			dedupe redis {
				address %s
				key_prefix %s-%d:
				timeout %s
			}
		}
		reverse_proxy %s
	}`, secrets[verify.Zavu], extra, redisSrv.Addr, prefix, time.Now().UnixNano(), timeout, upstream)
}
