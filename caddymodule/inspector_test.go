package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/wagate/caddy-webhook/caddymodule"
	"github.com/wagate/caddy-webhook/verify"
)

func TestInspectorCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want caddymodule.Inspector
		err  string
	}{
		{"webhook_inspector {\n archive /var/lib/w\n}", caddymodule.Inspector{Archive: "/var/lib/w"}, ""},
		{"webhook_inspector {\n archive {env.DIR}\n show_payloads on\n public\n}", caddymodule.Inspector{Archive: "{env.DIR}", ShowPayloads: true, Public: true}, ""},
		{"webhook_inspector {\n archive /w\n show_payloads off\n}", caddymodule.Inspector{Archive: "/w"}, ""},
		{"webhook_inspector", caddymodule.Inspector{}, "needs an archive directory"},
		{"webhook_inspector /w", caddymodule.Inspector{}, "wrong argument count"},
		{"webhook_inspector {\n archive /a\n archive /b\n}", caddymodule.Inspector{}, "archive given twice"},
		{"webhook_inspector {\n archive /a\n show_payloads maybe\n}", caddymodule.Inspector{}, `show_payloads "maybe"`},
		{"webhook_inspector {\n archive /a\n public yes\n}", caddymodule.Inspector{}, "wrong argument count"},
		{"webhook_inspector {\n archive /a\n secret x\n}", caddymodule.Inspector{}, `unrecognized subdirective "secret"`},
	} {
		var got caddymodule.Inspector
		err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.err == "" && (got.Archive != tc.want.Archive || got.ShowPayloads != tc.want.ShowPayloads || got.Public != tc.want.Public):
			t.Errorf("%q: %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestInspectorThroughCaddy: through a real Caddy, a loopback client gets
// the API; a client that Caddy's trusted_proxies resolves to another
// address gets 403, and so does it on the page; a POST gets 405; no answer
// holds the secret.
func TestInspectorThroughCaddy(t *testing.T) {
	up := newUpstream(t)
	dir := t.TempDir()
	gatewayWith(t, "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32 ::1/128\n\t}", fmt.Sprintf(`
	handle /wazera {
		webhook_verify wazera {
			secret %s
			archive %s
		}
		reverse_proxy %s
	}
	webhook_inspector /_webhooks* {
		archive %s
	}`, secrets[verify.Wazera], dir, up.URL, dir))
	e := newEvent(t, verify.Wazera, "message.received")
	if code, _, _ := send(t, e); code != 200 {
		t.Fatalf("send: %d", code)
	}
	do := func(method, path, forwardedFor string) (int, string) {
		req, _ := http.NewRequest(method, url(path), nil)
		if forwardedFor != "" {
			req.Header.Set("X-Forwarded-For", forwardedFor)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(b), secrets[verify.Wazera]) {
			t.Fatalf("%s %s: the answer holds the secret", method, path)
		}
		return resp.StatusCode, string(b)
	}
	code, body := do("GET", "/_webhooks/api/events", "")
	var page struct {
		Events []struct {
			EventID string `json:"event_id"`
			Status  int    `json:"status"`
		} `json:"events"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page.Events) != 1 || page.Events[0].EventID != e.id {
		t.Fatalf("loopback: %d %s", code, body)
	}
	for _, path := range []string{"/_webhooks/", "/_webhooks/api/events", "/_webhooks/app.js"} {
		if code, body := do("GET", path, "203.0.113.7"); code != 403 || strings.Contains(body, e.id) {
			t.Errorf("%s from 203.0.113.7: %d %.80s, want 403", path, code, body)
		}
	}
	if code, _ := do("POST", "/_webhooks/api/events", ""); code != 405 {
		t.Errorf("POST: %d, want 405", code)
	}
	if code, body := do("GET", "/_webhooks/", ""); code != 200 || !strings.Contains(body, "Webhook inspector") {
		t.Errorf("page: %d", code)
	}
}
