package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/wagate/caddy-webhook/verify"
)

// spans receives the spans of Caddy's tracing handler: Caddy builds its
// tracer provider's exporter with autoexport, which takes
// OTEL_TRACES_EXPORTER=webhook-test to mean this in-memory exporter.
var spans = tracetest.NewInMemoryExporter()

func init() {
	autoexport.RegisterSpanExporter("webhook-test", func(context.Context) (sdktrace.SpanExporter, error) {
		return spans, nil
	})
}

// TestTracingAttributes: with Caddy's tracing directive before
// webhook_verify, the request's span carries the webhook attributes and
// the claim, commit and release events.
func TestTracingAttributes(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "webhook-test")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50") // ms: export soon
	spans.Reset()
	up := newUpstream(t)
	up.status = func(n int) int {
		if n == 1 {
			return 500 // the second event is released
		}
		return 200
	}
	gateway(t, fmt.Sprintf(`
	handle /wazera {
		tracing {
			span webhook
		}
		webhook_verify wazera {
			secret %s
		}
		reverse_proxy %s
	}`, secrets[verify.Wazera], up.URL))
	ok := newEvent(t, verify.Wazera, "message.received")
	failed := newEvent(t, verify.Wazera, "message.delivered")
	tampered := newEvent(t, verify.Wazera, "message.received")
	tampered.body = bytes.Replace(tampered.body, []byte("order"), []byte("ordre"), 1)
	for _, c := range []struct {
		e    event
		want int
	}{{ok, 200}, {failed, 500}, {ok.resign(t), 200}, {tampered, 401}} {
		if code, _, body := send(t, c.e); code != c.want {
			t.Fatalf("%s: %d %s, want %d", c.e.id, code, body, c.want)
		}
	}

	type seen struct {
		attrs  map[string]string
		events []string
	}
	var got []seen
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d webhook spans exported, want 4: %+v", len(got), got)
		}
		time.Sleep(100 * time.Millisecond)
		got = got[:0]
		for _, s := range spans.GetSpans() {
			sp := seen{attrs: map[string]string{}}
			for _, a := range s.Attributes {
				sp.attrs[string(a.Key)] = a.Value.Emit()
			}
			for _, ev := range s.Events {
				name := ev.Name
				for _, a := range ev.Attributes {
					name += " " + string(a.Key) + "=" + a.Value.Emit()
				}
				sp.events = append(sp.events, name)
			}
			if sp.attrs["webhook.provider"] != "" {
				got = append(got, sp)
			}
		}
	}
	find := func(eventID, verdict string) seen {
		for _, s := range got {
			if s.attrs["webhook.event_id"] == eventID && s.attrs["webhook.verdict"] == verdict {
				return s
			}
		}
		t.Fatalf("no span of %s %s in %+v", eventID, verdict, got)
		return seen{}
	}
	s := find(ok.id, "verified")
	if s.attrs["webhook.provider"] != "wazera" || s.attrs["webhook.event_type"] != "message.received" ||
		!slices.Equal(s.events, []string{"webhook.claim webhook.claim=claimed", "webhook.commit"}) {
		t.Errorf("verified span: %+v", s)
	}
	s = find(failed.id, "verified")
	if !slices.Equal(s.events, []string{"webhook.claim webhook.claim=claimed", "webhook.release"}) {
		t.Errorf("released span: %+v", s)
	}
	s = find(ok.id, "duplicate")
	if !slices.Equal(s.events, []string{"webhook.claim webhook.claim=done"}) {
		t.Errorf("duplicate span: %+v", s)
	}
	s = find("", "rejected")
	if s.attrs["webhook.reason"] != "no_match" || len(s.events) != 0 {
		t.Errorf("rejected span: %+v", s)
	}
	for _, s := range got {
		for k, v := range s.attrs {
			if strings.Contains(v, secrets[verify.Wazera]) || (strings.Contains(k, "signature") && v != "") {
				t.Errorf("span attribute %s=%s", k, v)
			}
		}
	}
}

// scrape returns Caddy's /metrics.
func scrape(t *testing.T) string {
	t.Helper()
	resp, err := client.Get(fmt.Sprintf("http://localhost:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// sample returns the value of one series in a scrape; 0 when absent.
func sample(metrics, series string) float64 {
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// TestSecretMatchesAcrossRotation: during a rotation (two secrets), each
// verified request counts under the position of the secret that matched;
// once senders use the new one, only its count grows.
func TestSecretMatchesAcrossRotation(t *testing.T) {
	up := newUpstream(t)
	const old, rotated = "vobiz-old-secret", "vobiz-new-secret"
	gateway(t, fmt.Sprintf(`
	handle /vobiz {
		webhook_verify vobiz {
			secret %s
			secret %s
		}
		reverse_proxy %s
	}`, old, rotated, up.URL))
	signed := func(secret string) event {
		e := newEvent(t, verify.Vobiz, "message.delivered")
		v, err := verify.New(verify.Vobiz, verify.Options{Secrets: []string{secret}})
		if err != nil {
			t.Fatal(err)
		}
		h, err := v.Sign(e.body, verify.SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		h.Set("Content-Type", "application/json")
		e.header = h
		return e
	}
	series := func(i int) string {
		return fmt.Sprintf(`caddy_webhook_secret_matches_total{provider="vobiz",secret="%d"}`, i)
	}
	m := scrape(t)
	before := []float64{sample(m, series(0)), sample(m, series(1))}
	for _, s := range []string{old, old, rotated} {
		if code, _, body := send(t, signed(s)); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	m = scrape(t)
	if d0, d1 := sample(m, series(0))-before[0], sample(m, series(1))-before[1]; d0 != 2 || d1 != 1 {
		t.Fatalf("during the rotation: old +%v, new +%v; want +2, +1", d0, d1)
	}
	for range 3 {
		if code, _, _ := send(t, signed(rotated)); code != 200 {
			t.Fatal(code)
		}
	}
	if code, _, _ := send(t, signed("a-secret-nobody-configured")); code != 401 {
		t.Fatalf("unknown secret: %d", code)
	}
	m2 := scrape(t)
	if d0, d1 := sample(m2, series(0))-sample(m, series(0)), sample(m2, series(1))-sample(m, series(1)); d0 != 0 || d1 != 3 {
		t.Fatalf("after the rotation: old +%v, new +%v; want +0, +3", d0, d1)
	}
}

// TestDashboardMetricsExist: every metric that
// examples/grafana/dashboard.json queries is in /metrics after traffic
// that gives each a series: verified, rejected and duplicate requests, a
// failing upstream, and a dedupe store error (Redis paused).
func TestDashboardMetricsExist(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "examples", "grafana", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	re := regexp.MustCompile(`caddy_webhook_[a-z0-9_]+`)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range re.FindAllString(tg.Expr, -1) {
				names[n] = true
			}
		}
	}
	if len(names) < 6 {
		t.Fatalf("the dashboard queries %d metrics: %v", len(names), names)
	}

	up := newUpstream(t)
	up.status = func(n int) int {
		if n == 1 {
			return 503
		}
		return 200
	}
	gateway(t, zavuRedisRoute("dash", "200ms", "", up.URL))
	e := newEvent(t, verify.Zavu, "message.queued")
	send(t, e)                                                                         // verified, 2xx
	send(t, newEvent(t, verify.Zavu, "message.sent"))                                  // verified, 503
	send(t, e.resign(t))                                                               // duplicate
	send(t, event{provider: verify.Zavu, body: e.body, header: map[string][]string{}}) // rejected
	redisSrv.Pause()
	send(t, newEvent(t, verify.Zavu, "message.delivered")) // a claim error, forwarded (on_store_error open)
	redisSrv.Resume()

	m := scrape(t)
	for n := range names {
		if !regexp.MustCompile(`(?m)^` + n + `[{ ]`).MatchString(m) {
			t.Errorf("the dashboard queries %s, which /metrics does not have", n)
		}
	}
}

// TestMetricsAtZeroBeforeTraffic: a fresh config's /metrics already has
// the store-error and archive-deletion series at 0, so that a dashboard
// shows 0, not no data, until the first one.
func TestMetricsAtZeroBeforeTraffic(t *testing.T) {
	up := newUpstream(t)
	gateway(t, fmt.Sprintf(`
	handle /vobiz {
		webhook_verify vobiz {
			secret %s
			archive %s
		}
		reverse_proxy %s
	}`, secrets[verify.Vobiz], t.TempDir(), up.URL))
	m := scrape(t)
	for _, series := range []string{
		`caddy_webhook_store_errors_total{op="claim",provider="vobiz"} 0`,
		`caddy_webhook_store_errors_total{op="commit",provider="vobiz"} 0`,
		`caddy_webhook_store_errors_total{op="release",provider="vobiz"} 0`,
		`caddy_webhook_store_errors_total{op="claim_lost",provider="vobiz"} 0`,
		`caddy_webhook_archive_deleted_files_total{provider="vobiz",reason="retention"} 0`,
		`caddy_webhook_archive_deleted_files_total{provider="vobiz",reason="max_size"} 0`,
		`caddy_webhook_archive_write_errors_total{provider="vobiz"} 0`,
	} {
		if !strings.Contains(m, "\n"+series+"\n") {
			t.Errorf("/metrics has no %s", series)
		}
	}
}
