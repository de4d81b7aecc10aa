package verify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/verify"
)

// TestCustomPathsReadTheirOwnObject: a custom provider's "event.id",
// "event.type" and "event.created" are read from "event" only, never from
// another object that holds the same names ("data" here, first in the
// body): two events with one data.id stay two events.
func TestCustomPathsReadTheirOwnObject(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	v, err := verify.NewCustom(verify.Custom{
		Name: "acme", SignatureHeader: "X-Acme-Signature",
		IDField: "event.id", TypeField: "event.type", TimestampField: "event.created",
	}, verify.Options{Secrets: []string{"acme-secret"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	old := now.Add(-100 * time.Hour).Format(time.RFC3339)
	for _, id := range []string{"evt_1001", "evt_1002"} {
		// data holds an id, a type and a stale time of its own, first
		body := []byte(`{"data":{"id":"msg_42","type":"text","created":"` + old + `"},"event":{"id":"` + id + `","type":"message.x","created":"` + now.Add(-time.Minute).Format(time.RFC3339) + `"}}`)
		mac := hmac.New(sha256.New, []byte("acme-secret"))
		mac.Write(body)
		ev, err := v.Verify(http.Header{"X-Acme-Signature": {hex.EncodeToString(mac.Sum(nil))}}, body)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if ev.ID != id || ev.Type != "message.x" {
			t.Errorf("read id %q, type %q; want %q, message.x from event", ev.ID, ev.Type, id)
		}
	}
}

// TestUnusableTypeIsUnknown: a signed type that cannot go into a header
// (control characters, or longer than an id may be) is reported as
// "unknown" instead of failing every delivery attempt.
func TestUnusableTypeIsUnknown(t *testing.T) {
	v, err := verify.NewCustom(verify.Custom{Name: "acme", SignatureHeader: "X-Acme-Signature", IDField: "id", TypeField: "type"},
		verify.Options{Secrets: []string{"acme-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{`a\nb\u001b[31m`, `a\u0000x`, strings.Repeat("t", verify.MaxEventIDLen+1)} {
		body := []byte(`{"id":"evt_1","type":"` + typ + `"}`)
		mac := hmac.New(sha256.New, []byte("acme-secret"))
		mac.Write(body)
		ev, err := v.Verify(http.Header{"X-Acme-Signature": {hex.EncodeToString(mac.Sum(nil))}}, body)
		if err != nil || ev.Type != "unknown" {
			t.Errorf("type %.20q: %q, %v; want unknown", typ, ev.Type, err)
		}
	}
}

// TestFormOf: each form a provider signs in is named back from the
// headers Sign wrote, for the inspector's diagnosis.
func TestFormOf(t *testing.T) {
	for _, p := range verify.Providers() {
		v, err := verify.New(p, verify.Options{Secrets: []string{"whsec_Zm9ybS1zZWNyZXQ="}})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range v.Forms() {
			h, err := v.Sign([]byte(`{"id":"evt_1","event_id":"evt_1","type":"message.sent","event":"message.sent"}`), verify.SignOptions{Form: f.Name, ID: "msg_1"})
			if err != nil {
				t.Fatalf("%s %s: %v", p, f.Name, err)
			}
			if got := v.FormOf(h); got != f.Name {
				t.Errorf("%s: signed in %s, FormOf says %q", p, f.Name, got)
			}
		}
		if got := v.FormOf(http.Header{}); got != "" {
			t.Errorf("%s: no signature header, FormOf says %q", p, got)
		}
	}
}
