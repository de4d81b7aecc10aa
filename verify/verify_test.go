package verify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/verify"
	"github.com/wagate/caddy-webhook/verify/samples"
)

// opensslHex is HMAC-SHA256 in hex, for bodies made up inside a test. The
// fixed vectors in vectors_test.go are the independent check of the MAC
// code; this helper only spares writing one down per generated body.
func opensslHex(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func wazeraBody(ts time.Time) string {
	return `{"event":"message.read","timestamp":"` + ts.UTC().Format(time.RFC3339) + `","data":{"message_id":"m1","status":"read"}}`
}

func TestEventTimeWindows(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	v, err := verify.New(verify.Wazera, verify.Options{Secrets: []string{"s"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ts   time.Time
		want error
	}{
		{"fresh", now.Add(-time.Second), nil},
		{"25 h old: a legitimate 24 h retry", now.Add(-25 * time.Hour), nil},
		{"26.6 h old: Wazera's last retry", now.Add(-26*time.Hour - 36*time.Minute), nil},
		{"31 h old: beyond every retry", now.Add(-31 * time.Hour), verify.ErrTimestampTooOld},
		{"59 s ahead: clock skew", now.Add(59 * time.Second), nil},
		{"2 min ahead", now.Add(2 * time.Minute), verify.ErrTimestampTooNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := wazeraBody(tt.ts)
			ev, err := v.Verify(headers("X-Wazera-Signature", opensslHex("s", body)), []byte(body))
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && ev.Window != 30*time.Hour+time.Minute {
				t.Errorf("Window = %s, want 30h1m (max age + skew)", ev.Window)
			}
			var te *verify.TimestampError
			if tt.want != nil && (!errors.As(err, &te) || te.By <= 0) {
				t.Errorf("err %v is not a TimestampError with a positive offset", err)
			}
		})
	}
}

func TestAttemptTimeWindows(t *testing.T) {
	now := time.Unix(1705314600, 0)
	wz, _ := verify.New(verify.Wazapin, verify.Options{Secrets: []string{wazapinSecret}, Now: func() time.Time { return now }})
	zv, _ := verify.New(verify.Zavu, verify.Options{Secrets: []string{"zs"}, Now: func() time.Time { return now }})
	zavuBody := func(ts time.Time) []byte {
		return []byte(`{"id":"evt_1","type":"message.sent","timestamp":` + strconv.FormatInt(now.UnixMilli(), 10) + `,"data":{}}`)
	}
	tests := []struct {
		name   string
		v      *verify.Verifier
		offset time.Duration
		want   error
	}{
		{"wazapin 4 min old", wz, -4 * time.Minute, nil},
		{"wazapin 6 min old", wz, -6 * time.Minute, verify.ErrTimestampTooOld},
		{"wazapin 4 min ahead (symmetric window)", wz, 4 * time.Minute, nil},
		{"wazapin 6 min ahead", wz, 6 * time.Minute, verify.ErrTimestampTooNew},
		{"zavu t= 299 s old", zv, -299 * time.Second, nil},
		{"zavu t= 301 s old", zv, -301 * time.Second, verify.ErrTimestampTooOld},
		{"zavu t= 61 s ahead", zv, 61 * time.Second, verify.ErrTimestampTooNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := now.Add(tt.offset)
			var h http.Header
			var body []byte
			if tt.v == wz {
				body = []byte(`{"message_id":"m","status":"read"}`)
				h, _ = wz.Sign(body, verify.SignOptions{ID: "msg_1", Time: ts})
			} else {
				body = zavuBody(ts)
				h, _ = zv.Sign(body, verify.SignOptions{Time: ts})
			}
			_, err := tt.v.Verify(h, body)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestZavuBodyTimeBoundsSeedReplay: a current-form request's v1 signature
// is also a valid seed-form signature, so the body's event time is what
// bounds a replay in the seed form.
func TestZavuBodyTimeBoundsSeedReplay(t *testing.T) {
	body := vector(t, "zavu") // event time 2024-01-15T09:50:05Z
	for _, tt := range []struct {
		now  string
		want error
	}{
		{"2024-01-15T12:00:00Z", nil},                       // 2 h 10 min later: a retry
		{"2024-01-15T14:00:00Z", verify.ErrTimestampTooOld}, // beyond the 4 h window
	} {
		v, _ := verify.New(verify.Zavu, verify.Options{Secrets: []string{"whsec_zavu_test"}, Now: clock(tt.now)})
		_, err := v.Verify(headers("X-Zavu-Signature", "sha256="+zavuV1), body)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("now %s: err = %v, want %v", tt.now, err, tt.want)
		}
	}
}

func TestWindow(t *testing.T) {
	for _, tt := range []struct {
		provider string
		opts     verify.Options
		want     time.Duration
	}{
		{verify.Wazera, verify.Options{}, 30*time.Hour + time.Minute},
		{verify.Zavu, verify.Options{}, 4*time.Hour + time.Minute},
		{verify.WAStack, verify.Options{}, 36*time.Hour + time.Minute},
		{verify.Vobiz, verify.Options{}, 30*time.Hour + time.Minute},
		{verify.Wazapin, verify.Options{}, 10 * time.Minute},
		{verify.Standard, verify.Options{}, 10 * time.Minute},
		{verify.Wazapin, verify.Options{Tolerance: time.Minute, FutureSkew: 10 * time.Second}, 70 * time.Second},
		{verify.Wazera, verify.Options{MaxAge: 48 * time.Hour}, 48*time.Hour + time.Minute},
	} {
		tt.opts.Secrets = []string{"whsec_c2VjcmV0"}
		v, err := verify.New(tt.provider, tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Window(); got != tt.want {
			t.Errorf("%s %+v: Window = %s, want %s", tt.provider, tt.opts, got, tt.want)
		}
	}
	c, _ := verify.NewCustom(verify.Custom{Name: "x", SignatureHeader: "X-S"}, verify.Options{Secrets: []string{"s"}})
	if c.Window() != 0 {
		t.Errorf("custom without a timestamp: Window = %s, want 0", c.Window())
	}
}

// TestSamples verifies and normalises every sample of every provider in
// every signature form, and checks the canonical type each must map to.
func TestSamples(t *testing.T) {
	want := map[string]map[string]string{ // provider → sample → canonical type
		verify.Wazera: {
			"message.sent": "message.sent", "message.delivered": "message.delivered", "message.read": "message.read",
			"message.failed": "message.failed", "message.received": "message.received", "contact.created": "contact.created",
			"contact.updated": "contact.updated", "campaign.completed": "campaign.completed",
		},
		verify.Zavu: {
			"message.queued": "message.queued", "message.sent": "message.sent", "message.delivered": "message.delivered",
			"message.failed": "message.failed", "message.inbound": "message.received",
			"template.approved": "template.approved", "template.rejected": "template.rejected",
		},
		verify.WAStack: {
			"message.received": "message.received", "message.sent": "message.sent", "message.delivered": "message.delivered",
			"message.read": "message.read", "message.failed": "message.failed", "media.uploaded": "media.uploaded",
			"session.connected": "session.connected", "session.disconnected": "session.disconnected",
			"automation.triggered": "automation.triggered",
		},
		verify.Wazapin: {
			"message.new": "message.received", "message.sent": "message.sent", "message.status_update": "message.delivered",
			"conversation.updated": "conversation.updated", "contact.updated": "contact.updated",
			"template.status_update": "template.approved",
		},
		verify.Vobiz: {
			"message.received": "message.received", "message.sent": "message.sent", "message.delivered": "message.delivered",
			"message.read": "message.read", "message.failed": "message.failed", "contact.updated": "contact.updated",
			"campaign.completed": "campaign.completed",
		},
	}
	now := time.Now()
	for _, p := range samples.Providers() {
		if len(samples.Events(p)) != len(want[p]) {
			t.Errorf("%s: %d samples, %d expectations", p, len(samples.Events(p)), len(want[p]))
		}
		v, err := verify.New(p, verify.Options{Secrets: []string{"whsec_dGVzdC1zYW1wbGVz"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range samples.Events(p) {
			for _, form := range v.Forms() {
				t.Run(p+"/"+e+"/"+form.Name, func(t *testing.T) {
					vals := samples.Fresh(now.Add(-time.Minute))
					body, err := samples.Body(p, e, vals)
					if err != nil {
						t.Fatal(err)
					}
					h, err := v.Sign(body, verify.SignOptions{Form: form.Name, ID: "msg_" + vals.ID})
					if err != nil {
						t.Fatal(err)
					}
					ev, err := v.Verify(h, body)
					if err != nil {
						t.Fatalf("Verify: %v\n%s", err, body)
					}
					if ev.Type != want[p][e] {
						t.Errorf("Type = %q, want %q", ev.Type, want[p][e])
					}
					if ev.ProviderType != e {
						t.Errorf("ProviderType = %q, want %q", ev.ProviderType, e)
					}
					// the same event a second time (a retry) has the same id
					h2, _ := v.Sign(body, verify.SignOptions{Form: form.Name, ID: "msg_" + vals.ID})
					if ev2, err := v.Verify(h2, body); err != nil || ev2.ID != ev.ID {
						t.Errorf("retry: id %q, err %v; first id %q", ev2.ID, err, ev.ID)
					}
					checkCloudEvent(t, &ev)
				})
			}
		}
	}
}

func TestWazapinTypeInference(t *testing.T) {
	for _, tt := range []struct{ body, providerType, typ string }{
		{`{"message_id":"m","direction":"inbound"}`, "message.new", "message.received"},
		{`{"message_id":"m","direction":"outbound"}`, "message.new", "message.new"},
		{`{"message_id":"m","status":"read"}`, "message.status_update", "message.read"},
		{`{"message_id":"m","status":"failed","error_code":"131026"}`, "message.status_update", "message.failed"},
		{`{"message_id":"m","status":"deleted"}`, "message.status_update", "message.status_update"},
		{`{"template_name":"t","status":"rejected","reason":"x"}`, "template.status_update", "template.rejected"},
		{`{"template_id":"t","status":"paused"}`, "template.status_update", "template.updated"},
		{`{"conversation_id":"c","status":"closed"}`, "conversation.updated", "conversation.updated"},
		{`{"contact_id":"c"}`, "contact.updated", "contact.updated"},
		{`{"something":"else"}`, "unknown", "unknown"},
		{`{"event_type":"message.status_update","message_id":"m","status":"delivered"}`, "message.status_update", "message.delivered"},
		{`{"type":"billing.low_balance","balance":3}`, "billing.low_balance", "billing.low_balance"},
	} {
		v, _ := verify.New(verify.Wazapin, verify.Options{Secrets: []string{wazapinSecret}})
		h, _ := v.Sign([]byte(tt.body), verify.SignOptions{})
		ev, err := v.Verify(h, []byte(tt.body))
		if err != nil {
			t.Fatalf("%s: %v", tt.body, err)
		}
		if ev.ProviderType != tt.providerType || ev.Type != tt.typ {
			t.Errorf("%s: (%q, %q), want (%q, %q)", tt.body, ev.ProviderType, ev.Type, tt.providerType, tt.typ)
		}
	}
}

// TestBadInput feeds each parser the malformed input a gateway at the edge
// sees, and checks the sentinel error (never a panic).
func TestBadInput(t *testing.T) {
	now := time.Unix(1705314600, 0)
	opts := func(secret string) verify.Options {
		return verify.Options{Secrets: []string{secret}, Now: func() time.Time { return now }}
	}
	wazera, _ := verify.New(verify.Wazera, opts("s"))
	zavu, _ := verify.New(verify.Zavu, opts("s"))
	wastack, _ := verify.New(verify.WAStack, opts("s"))
	wazapin, _ := verify.New(verify.Wazapin, opts(wazapinSecret))
	vobiz, _ := verify.New(verify.Vobiz, opts("s"))
	good := `{"event":"message.read","timestamp":"2024-01-15T10:30:00Z","data":{"message_id":"m"}}`
	signed := func(body string) http.Header { return headers("X-Wazera-Signature", opensslHex("s", body)) }
	ts := strconv.FormatInt(now.Unix(), 10)
	std := func(id, ts, sig string) http.Header {
		return headers("Webhook-Id", id, "Webhook-Timestamp", ts, "Webhook-Signature", sig)
	}
	validStd, _ := wazapin.Sign([]byte(`{}`), verify.SignOptions{ID: "msg_1", Time: now})
	goodV1 := validStd.Get("Webhook-Signature")
	deep := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	hundred := strings.TrimSpace(strings.Repeat(goodV1+" ", 100))

	tests := []struct {
		name string
		v    *verify.Verifier
		h    http.Header
		body string
		want error
	}{
		{"no signature header", wazera, http.Header{}, good, verify.ErrMissingSignature},
		{"empty signature header", wazera, headers("X-Wazera-Signature", ""), good, verify.ErrMissingSignature},
		{"repeated signature header", wazera, headers("X-Wazera-Signature", opensslHex("s", good), "X-Wazera-Signature", opensslHex("s", good)), good, verify.ErrMalformedSignature},
		{"signature too short", wazera, headers("X-Wazera-Signature", "abcd"), good, verify.ErrMalformedSignature},
		{"signature too long", wazera, headers("X-Wazera-Signature", opensslHex("s", good)+"00"), good, verify.ErrMalformedSignature},
		{"signature not hex", wazera, headers("X-Wazera-Signature", strings.Repeat("zz", 32)), good, verify.ErrMalformedSignature},
		{"sha256= with nothing after", zavu, headers("X-Zavu-Signature", "sha256="), good, verify.ErrMalformedSignature},
		{"wastack without prefix", wastack, headers("X-WAStack-Signature", opensslHex("s", good)), good, verify.ErrMalformedSignature},
		{"zavu garbage", zavu, headers("X-Zavu-Signature", "garbage"), good, verify.ErrMalformedSignature},
		{"zavu t twice", zavu, headers("X-Zavu-Signature", "t=1,t=2,v1="+opensslHex("s", good)), good, verify.ErrMalformedSignature},
		{"zavu v2 without t", zavu, headers("X-Zavu-Signature", "v2="+opensslHex("s", good)), good, verify.ErrMissingTimestamp},
		{"zavu t=-1", zavu, headers("X-Zavu-Signature", "t=-1,v2="+opensslHex("s", good)), good, verify.ErrMalformedTimestamp},
		{"zavu t=1e309", zavu, headers("X-Zavu-Signature", "t=1e309,v2="+opensslHex("s", good)), good, verify.ErrMalformedTimestamp},
		{"zavu t of 20 digits", zavu, headers("X-Zavu-Signature", "t=12345678901234567890,v2="+opensslHex("s", good)), good, verify.ErrMalformedTimestamp},
		{"zavu t is text", zavu, headers("X-Zavu-Signature", "t=yesterday,v2="+opensslHex("s", good)), good, verify.ErrMalformedTimestamp},
		{"vobiz neither hex nor base64", vobiz, headers("X-Webhook-Signature", "!!!"), good, verify.ErrMalformedSignature},
		{"empty body", wazera, signed(""), "", verify.ErrMalformedBody},
		{"body not JSON", wazera, signed("hello"), "hello", verify.ErrMalformedBody},
		{"JSON array", wazera, signed("[1,2]"), "[1,2]", verify.ErrMalformedBody},
		{"JSON string", wazera, signed(`"x"`), `"x"`, verify.ErrMalformedBody},
		{"truncated JSON", wazera, signed(good[:40]), good[:40], verify.ErrMalformedBody},
		{"two objects", wazera, signed(good + good), good + good, verify.ErrMalformedBody},
		{"non-UTF-8 in a string", wazera, signed("{\"event\":\"\xff\"}"), "{\"event\":\"\xff\"}", verify.ErrMalformedBody},
		{"deeply nested", wazera, signed(deep), deep, verify.ErrMalformedBody},
		{"body timestamp missing", wazera, signed(`{"event":"message.read"}`), `{"event":"message.read"}`, verify.ErrMissingTimestamp},
		{"body timestamp -1", wazera, signed(`{"timestamp":-1}`), `{"timestamp":-1}`, verify.ErrMalformedTimestamp},
		{"body timestamp 1e309", wazera, signed(`{"timestamp":1e309}`), `{"timestamp":1e309}`, verify.ErrMalformedTimestamp},
		{"body timestamp of 20 digits", wazera, signed(`{"timestamp":12345678901234567890}`), `{"timestamp":12345678901234567890}`, verify.ErrMalformedTimestamp},
		{"body timestamp text", wazera, signed(`{"timestamp":"last tuesday"}`), `{"timestamp":"last tuesday"}`, verify.ErrMalformedTimestamp},
		{"body timestamp an object", wazera, signed(`{"timestamp":{}}`), `{"timestamp":{}}`, verify.ErrMalformedTimestamp},
		{"zavu without id", zavu, headers("X-Zavu-Signature", "sha256="+opensslHex("s", `{"timestamp":1705314600000}`)), `{"timestamp":1705314600000}`, verify.ErrMissingEventID},
		{"zavu id empty", zavu, headers("X-Zavu-Signature", "sha256="+opensslHex("s", `{"id":"","timestamp":1705314600000}`)), `{"id":"","timestamp":1705314600000}`, verify.ErrMissingEventID},
		{"zavu id with a newline", zavu, headers("X-Zavu-Signature", "sha256="+opensslHex("s", `{"id":"a\nb","timestamp":1705314600000}`)), `{"id":"a\nb","timestamp":1705314600000}`, verify.ErrMissingEventID},
		{"standard: no headers", wazapin, http.Header{}, `{}`, verify.ErrMissingSignature},
		{"standard: no id (it is signed: 401, not 400)", wazapin, headers("Webhook-Timestamp", ts, "Webhook-Signature", goodV1), `{}`, verify.ErrMissingSignature},
		{"standard: no timestamp", wazapin, headers("Webhook-Id", "msg_1", "Webhook-Signature", goodV1), `{}`, verify.ErrMissingTimestamp},
		{"standard: timestamp -1", wazapin, std("msg_1", "-1", goodV1), `{}`, verify.ErrMalformedTimestamp},
		{"standard: timestamp 1e309", wazapin, std("msg_1", "1e309", goodV1), `{}`, verify.ErrMalformedTimestamp},
		{"standard: timestamp of 20 digits", wazapin, std("msg_1", "12345678901234567890", goodV1), `{}`, verify.ErrMalformedTimestamp},
		{"standard: timestamp text", wazapin, std("msg_1", "now", goodV1), `{}`, verify.ErrMalformedTimestamp},
		{"standard: 100 entries", wazapin, std("msg_1", ts, hundred), `{}`, verify.ErrMalformedSignature},
		{"standard: only v1a entries", wazapin, std("msg_1", ts, "v1a,abc v2,def"), `{}`, verify.ErrMalformedSignature},
		{"standard: v1 not base64", wazapin, std("msg_1", ts, "v1,!!!!"), `{}`, verify.ErrMalformedSignature},
		{"standard: v1 wrong length", wazapin, std("msg_1", ts, "v1,AAAA"), `{}`, verify.ErrMalformedSignature},
		{"standard: id of 300 bytes", wazapin, std(strings.Repeat("a", 300), ts, goodV1), `{}`, verify.ErrMissingEventID},
		{"standard: mixed sets are not combined", wazapin, headers("Webhook-Id", "msg_1", "Svix-Timestamp", ts, "Svix-Signature", goodV1), `{}`, verify.ErrMissingSignature},
		{"standard: body not an object", wazapin, validStd, `[]`, verify.ErrNoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.v.Verify(tt.h, []byte(tt.body))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			// no error text carries a secret or a signature
			msg := err.Error()
			for _, secret := range []string{"whsec_", wazapinSecret, opensslHex("s", good)} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q contains %q", msg, secret)
				}
			}
			for _, vals := range tt.h {
				for _, val := range vals {
					if len(val) >= 16 && strings.Contains(msg, val) {
						t.Errorf("error %q contains the header value %q", msg, val)
					}
				}
			}
		})
	}
}

// TestBodyErrorsAreMalformedBody: a signed body with a broken timestamp is
// the provider's malformed JSON (400), distinct from a failed check (401).
func TestBodyErrorsAreMalformedBody(t *testing.T) {
	v, _ := verify.New(verify.Wazera, verify.Options{Secrets: []string{"s"}})
	body := `{"timestamp":"soon"}`
	_, err := v.Verify(headers("X-Wazera-Signature", opensslHex("s", body)), []byte(body))
	if !errors.Is(err, verify.ErrMalformedBody) || !errors.Is(err, verify.ErrMalformedTimestamp) {
		t.Errorf("err = %v, want both ErrMalformedBody and ErrMalformedTimestamp", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		make func() error
		want string
	}{
		{"unknown provider", func() error { _, err := verify.New("whatsup", verify.Options{Secrets: []string{"s"}}); return err }, `unknown provider "whatsup"`},
		{"no secret", func() error { _, err := verify.New(verify.Wazera, verify.Options{}); return err }, "at least one secret"},
		{"empty secret", func() error { _, err := verify.New(verify.Wazera, verify.Options{Secrets: []string{""}}); return err }, "secret 1 is empty"},
		{"whsec not base64", func() error {
			_, err := verify.New(verify.Wazapin, verify.Options{Secrets: []string{"whsec_not*base64"}})
			return err
		}, "not a whsec_ secret"},
		{"negative window", func() error {
			_, err := verify.New(verify.Wazera, verify.Options{Secrets: []string{"s"}, MaxAge: -time.Second})
			return err
		}, "must not be negative"},
		{"custom without header", func() error {
			_, err := verify.NewCustom(verify.Custom{Name: "x"}, verify.Options{Secrets: []string{"s"}})
			return err
		}, "signature_header is required"},
		{"custom bad name", func() error {
			_, err := verify.NewCustom(verify.Custom{Name: "Has Space", SignatureHeader: "X"}, verify.Options{Secrets: []string{"s"}})
			return err
		}, "custom provider name"},
		{"custom named like a built-in", func() error {
			_, err := verify.NewCustom(verify.Custom{Name: "wazera", SignatureHeader: "X"}, verify.Options{Secrets: []string{"s"}})
			return err
		}, "built-in"},
		{"custom md5", func() error {
			_, err := verify.NewCustom(verify.Custom{Name: "x", SignatureHeader: "X", Algorithm: "md5"}, verify.Options{Secrets: []string{"s"}})
			return err
		}, `algorithm "md5"`},
		{"custom body not last", func() error {
			_, err := verify.NewCustom(verify.Custom{Name: "x", SignatureHeader: "X", Signed: "{body}.{timestamp}", TimestampHeader: "T"}, verify.Options{Secrets: []string{"s"}})
			return err
		}, "must end with {body}"},
		{"custom unsigned id header", func() error {
			_, err := verify.NewCustom(verify.Custom{Name: "x", SignatureHeader: "X", IDHeader: "X-Id"}, verify.Options{Secrets: []string{"s"}})
			return err
		}, "id_header and {id}"},
		{"custom unsigned timestamp header", func() error {
			_, err := verify.NewCustom(verify.Custom{Name: "x", SignatureHeader: "X", TimestampHeader: "X-T"}, verify.Options{Secrets: []string{"s"}})
			return err
		}, "timestamp_header and {timestamp}"},
		{"custom unknown placeholder", func() error {
			_, err := verify.NewCustom(verify.Custom{Name: "x", SignatureHeader: "X", Signed: "{nonce}.{body}"}, verify.Options{Secrets: []string{"s"}})
			return err
		}, "unknown placeholder {nonce}"},
		{"custom header named twice", func() error {
			_, err := verify.NewCustom(verify.Custom{Name: "x", SignatureHeader: "X-Sig", Signed: "{id}.{body}", IDHeader: "x-sig"}, verify.Options{Secrets: []string{"s"}})
			return err
		}, "named twice"},
		{"custom header name not a token", func() error {
			_, err := verify.NewCustom(verify.Custom{Name: "x", SignatureHeader: "X Sig"}, verify.Options{Secrets: []string{"s"}})
			return err
		}, `header name "X Sig"`},
		{"custom field names differing in case", func() error {
			_, err := verify.NewCustom(verify.Custom{Name: "x", SignatureHeader: "X", IDField: "Type", TypeField: "type"}, verify.Options{Secrets: []string{"s"}})
			return err
		}, "differ only in case"},
		{"custom deep path", func() error {
			_, err := verify.NewCustom(verify.Custom{Name: "x", SignatureHeader: "X", IDField: "a.b.c"}, verify.Options{Secrets: []string{"s"}})
			return err
		}, `field path "a.b.c"`},
	} {
		err := tt.make()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "not*base64") {
			t.Errorf("%s: error repeats the secret: %v", tt.name, err)
		}
	}
}

func TestSignRejectsUnknownForm(t *testing.T) {
	v, _ := verify.New(verify.Zavu, verify.Options{Secrets: []string{"s"}})
	if _, err := v.Sign([]byte(`{}`), verify.SignOptions{Form: "v9"}); err == nil {
		t.Error("Sign accepted an unknown form")
	}
}

func ExampleVerifier_Verify() {
	v, err := verify.New(verify.Standard, verify.Options{
		Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		Now:     func() time.Time { return time.Unix(1614265330, 0) },
	})
	if err != nil {
		panic(err)
	}
	h := http.Header{}
	h.Set("Webhook-Id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("Webhook-Timestamp", "1614265330")
	h.Set("Webhook-Signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	ev, err := v.Verify(h, []byte(`{"test": 2432232314}`))
	fmt.Println(ev.ID, err)

	h.Set("Webhook-Signature", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	_, err = v.Verify(h, []byte(`{"test": 2432232314}`))
	fmt.Println(errors.Is(err, verify.ErrNoMatch))
	// Output:
	// msg_p5jXN8AQM9LWM0D4loKWxJek <nil>
	// true
}

func ExampleEvent_AppendCloudEvent() {
	body := []byte(`{"event":"message.delivered","timestamp":"2024-01-15T10:30:00Z","data":{"message_id":"msg_abc123","to":"201234567890","status":"delivered","delivered_at":"2024-01-15T10:30:00Z"}}`)
	v, _ := verify.New(verify.Wazera, verify.Options{
		Secrets: []string{"wz_test_secret"},
		Now:     func() time.Time { return time.Date(2024, 1, 15, 10, 31, 0, 0, time.UTC) },
	})
	h := http.Header{"X-Wazera-Signature": {"e5b5e079092834d9464ca20632ee986c9a9b14530afd4de410d27d0d0ac0c3bd"}}
	ev, err := v.Verify(h, body)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(ev.AppendCloudEvent(nil)))
	// Output:
	// {"specversion":"1.0","id":"de45c2dd7bf381919bb7112be2ade2fb","source":"wazera","type":"message.delivered","time":"2024-01-15T10:30:00Z","datacontenttype":"application/json","providerevent":"message.delivered","data":{"message_id":"msg_abc123","to":"201234567890","status":"delivered","payload":{"event":"message.delivered","timestamp":"2024-01-15T10:30:00Z","data":{"message_id":"msg_abc123","to":"201234567890","status":"delivered","delivered_at":"2024-01-15T10:30:00Z"}}}}
}
