package caddymodule_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/internal/testutil"
	"github.com/wagate/caddy-webhook/verify"
	"github.com/wagate/caddy-webhook/verify/samples"
)

// TestExampleCatchAll runs Caddyfile.example itself (its ports moved to
// free ones, its app replaced by a recording upstream) with make run's
// demo secrets: each provider's path verifies and forwards; any other
// path, even with a correctly signed event, answers 404 and forwards
// nothing, never Caddy's empty 200, which a provider takes as delivered.
func TestExampleCatchAll(t *testing.T) {
	demo := setDemoSecrets(t)
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	cfg := string(raw)
	for _, r := range [][2]string{
		{"admin localhost:2019", fmt.Sprintf("admin localhost:%d", adminPort)},
		{"\n:8080 {", fmt.Sprintf("\n:%d {", httpPort)},
		{"reverse_proxy 127.0.0.1:9090", "reverse_proxy " + up.URL},
		{"\n:9090 {", fmt.Sprintf("\n:%d {", testutil.FreePort())},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("Caddyfile.example no longer holds %q: update this test", r[0])
		}
		cfg = strings.ReplaceAll(cfg, r[0], r[1])
	}
	caddytestTester(t).InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}

	post := func(path string, body []byte, h http.Header) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url(path), bytes.NewReader(body))
		req.Header = h.Clone()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	signed := func(p string) ([]byte, http.Header) {
		t.Helper()
		v, err := verify.New(p, verify.Options{Secrets: []string{demo[strings.ToUpper(p)+"_SECRET"]}})
		if err != nil {
			t.Fatal(err)
		}
		vals := samples.Fresh(time.Now().Add(-time.Second))
		body, err := samples.Body(p, samples.Events(p)[0], vals)
		if err != nil {
			t.Fatal(err)
		}
		h, err := v.Sign(body, verify.SignOptions{ID: "msg_" + vals.ID})
		if err != nil {
			t.Fatal(err)
		}
		h.Set("Content-Type", "application/json")
		return body, h
	}

	for _, p := range providerNames {
		body, h := signed(p)
		before := len(up.received())
		if status, answer := post("/"+p, body, h); status != http.StatusOK || len(up.received()) != before+1 {
			t.Errorf("/%s: %d %q, upstream got %d requests, want 200 and 1", p, status, answer, len(up.received())-before)
		}
	}

	before := len(up.received())
	for _, path := range []string{"/", "/wazera/", "/wazra", "/wazera/extra", "/zavu.json", "/webhooks/vobiz"} {
		body, h := signed(verify.Wazera)
		status, answer := post(path, body, h)
		if status != http.StatusNotFound || !strings.HasPrefix(answer, "404 ") {
			t.Errorf("POST %s: %d %q, want 404", path, status, answer)
		}
	}
	resp, err := client.Get(url("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /: %d, want 404", resp.StatusCode)
	}
	if n := len(up.received()) - before; n != 0 {
		t.Errorf("requests to other paths reached the upstream %d times", n)
	}
}
