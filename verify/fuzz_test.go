package verify_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wagate/caddy-webhook/verify"
)

var sentinels = []error{
	verify.ErrMissingSignature, verify.ErrMalformedSignature, verify.ErrNoMatch,
	verify.ErrMissingTimestamp, verify.ErrMalformedTimestamp, verify.ErrTimestampTooOld,
	verify.ErrTimestampTooNew, verify.ErrMalformedBody, verify.ErrMissingEventID,
}

func fuzzVerifiers(t testing.TB) []*verify.Verifier {
	now := func() time.Time { return time.Unix(1705314600, 0) }
	var vs []*verify.Verifier
	for _, p := range verify.Providers() {
		v, err := verify.New(p, verify.Options{Secrets: []string{"whsec_ZnV6ei1zZWNyZXQ=", "whsec_b3RoZXI="}, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	c, err := verify.NewCustom(verify.Custom{
		Name: "fuzz", SignatureHeader: "X-Signature", SignaturePrefix: "sha256=", Signed: "{id}.{timestamp}.{body}",
		IDHeader: "X-Id", TimestampHeader: "X-Timestamp", TimestampKind: verify.TimestampAttempt, TypeField: "data.kind",
	}, verify.Options{Secrets: []string{"s"}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return append(vs, c)
}

// every header any scheme reads
var fuzzHeaders = []string{
	verify.HeaderWazeraSignature, verify.HeaderZavuSignature, verify.HeaderWAStackSignature,
	verify.HeaderVobizSignature, verify.HeaderVobizWebhookSignature,
	verify.HeaderWebhookSignature, verify.HeaderSvixSignature, "X-Signature",
}

// FuzzVerify sends every verifier arbitrary signature, id and timestamp
// headers and an arbitrary body: no panic, every error wraps a sentinel,
// and anything accepted yields a usable id and valid output.
func FuzzVerify(f *testing.F) {
	good := `{"id":"evt_1","event":"message.read","timestamp":"2024-01-15T10:30:00Z","data":{"message_id":"m"}}`
	for _, seed := range []struct{ sig, id, ts, body string }{
		{"sha256=" + strings.Repeat("ab", 32), "msg_1", "1705314600", good},
		{"t=1705314600,v1=" + strings.Repeat("0", 64) + ",v2=" + strings.Repeat("f", 64), "", "", good},
		{"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1a,xyz", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", `{"test": 2432232314}`},
		{strings.Repeat("v1,AAAA ", 100), "id", "-1", "{}"},
		{"sha256=", "", "1e309", ""},
		{"ZCl301qwalNgMRCOrE73CV8zuAO6TfZejiyeiSqXmro=", "\x00", "12345678901234567890", "\xff"},
		{"", "a\nb", "text", strings.Repeat("[", 100)},
	} {
		f.Add(seed.sig, seed.id, seed.ts, []byte(seed.body))
	}
	vs := fuzzVerifiers(f)
	f.Fuzz(func(t *testing.T, sig, id, ts string, body []byte) {
		h := http.Header{}
		for _, name := range fuzzHeaders {
			h[name] = []string{sig}
		}
		for _, name := range []string{verify.HeaderWebhookID, verify.HeaderSvixID, "X-Id"} {
			h[name] = []string{id}
		}
		for _, name := range []string{verify.HeaderWebhookTimestamp, verify.HeaderSvixTimestamp, "X-Timestamp"} {
			h[name] = []string{ts}
		}
		for _, v := range vs {
			ev, err := v.Verify(h, body)
			if err != nil {
				found := false
				for _, s := range sentinels {
					found = found || errors.Is(err, s)
				}
				if !found {
					t.Fatalf("%s: error %v wraps no sentinel", v.Name(), err)
				}
				continue
			}
			checkAccepted(t, v, &ev)
		}
	})
}

func checkAccepted(t *testing.T, v *verify.Verifier, ev *verify.Event) {
	t.Helper()
	if ev.ID == "" || len(ev.ID) > verify.MaxEventIDLen || strings.ContainsAny(ev.ID, "\x00\r\n") {
		t.Fatalf("%s: accepted with an unusable id %q", v.Name(), ev.ID)
	}
	out := ev.AppendCloudEvent(nil)
	var ce struct {
		Data struct {
			Payload json.RawMessage `json:"payload"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &ce); err != nil {
		t.Fatalf("%s: output is not JSON: %v\n%q", v.Name(), err, out)
	}
	if string(ce.Data.Payload) != strings.Trim(string(ev.Body), " \t\r\n") {
		t.Fatalf("%s: payload changed", v.Name())
	}
}

// FuzzSignVerify signs arbitrary bodies the way each provider does, in
// every form, and checks that whatever the scanner accepts verifies and
// normalises into valid JSON that carries the body unchanged.
func FuzzSignVerify(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"id":"e","type":"message.inbound","timestamp":1705314600000,"data":{"text":"\u00e9\"x"}}`,
		`{"event_id":"u","event_type":"message.read","occurred_at":"2024-01-15T10:30:00Z","payload":{"error_code":7}}`,
		`{"message_id":"m","direction":"inbound","from_phone":"62"}`, `{"event":"x","timestamp":"2024-01-15T10:30:00Z"}`,
	} {
		f.Add([]byte(s), "msg_1")
	}
	vs := fuzzVerifiers(f)
	f.Fuzz(func(t *testing.T, body []byte, id string) {
		for _, v := range vs {
			for _, form := range v.Forms() {
				h, err := v.Sign(body, verify.SignOptions{Form: form.Name, ID: id, Time: time.Unix(1705314600, 0)})
				if err != nil {
					// every signed template here puts "." after {id}
					if sendable(id) && !(strings.Contains(id, ".") && errors.Is(err, verify.ErrMissingEventID)) {
						t.Fatalf("Sign refused a sendable id %q: %v", id, err)
					}
					return
				}
				ev, err := v.Verify(h, body)
				if errors.Is(err, verify.ErrNoMatch) || errors.Is(err, verify.ErrMalformedSignature) || errors.Is(err, verify.ErrMissingSignature) {
					t.Fatalf("%s/%s: our own signature was refused: %v", v.Name(), form.Name, err)
				}
				if err == nil {
					checkAccepted(t, v, &ev)
				}
			}
		}
	})
}

// FuzzCustom builds custom providers from arbitrary templates, header
// names and field paths: a config is refused when it loads, or what Sign
// makes of it verifies (Sign may refuse only an id the scheme cannot
// carry), and anything accepted is a usable event.
func FuzzCustom(f *testing.F) {
	for _, s := range []struct{ signed, idH, tsH, idF, typeF, tsF, id string }{
		{"{id}.{timestamp}.{body}", "X-Id", "X-Ts", "", "type", "", "msg_1"},
		{"v0:{timestamp}:{body}", "", "X-Ts", "event.id", "type", "", "msg_1"},
		{"{timestamp}{id}{body}", "X-Id", "X-Ts", "", "", "", "msg_1"},
		{"{id}{body}", "X-Id", "", "", "", "", "msg_1"},
		{"{body}", "", "", "id", "data.kind", "ts", "e"},
		{"{id}ab{timestamp}aba{body}", "X-Id", "X-Ts", "", "", "", "xab"},
		{"{id}.{body}", "X-Sig", "", "", "", "", "a.b"},
		{"{timestamp}.{body}", "", "x ts", "", "", "", ""},
	} {
		f.Add(s.signed, s.idH, s.tsH, s.idF, s.typeF, s.tsF, s.id, false, []byte(`{"id":"e","type":"a","ts":1705314600,"event":{"id":"x"}}`))
	}
	now := time.Unix(1705314600, 0)
	f.Fuzz(func(t *testing.T, signed, idH, tsH, idF, typeF, tsF, id string, attempt bool, body []byte) {
		c := verify.Custom{
			Name: "fuzz", SignatureHeader: "X-Sig", Signed: signed, IDHeader: idH, TimestampHeader: tsH,
			IDField: idF, TypeField: typeF, TimestampField: tsF, Encoding: "base64",
		}
		if attempt {
			c.TimestampKind = verify.TimestampAttempt
		}
		v, err := verify.NewCustom(c, verify.Options{Secrets: []string{"s"}, Now: func() time.Time { return now }})
		if err != nil {
			return
		}
		h, err := v.Sign(body, verify.SignOptions{ID: id, Time: now})
		if err != nil {
			if !strings.Contains(signed, "{id}") && (id == "" || sendable(id)) {
				t.Fatalf("Sign refused %q with id %q: %v", signed, id, err)
			}
			return
		}
		ev, err := v.Verify(h, body)
		for _, s := range []error{verify.ErrNoMatch, verify.ErrMalformedSignature, verify.ErrMissingSignature} {
			if errors.Is(err, s) {
				t.Fatalf("%+v: our own signature was refused: %v\nheaders %v", c, err, h)
			}
		}
		if idH != "" && errors.Is(err, verify.ErrMissingEventID) {
			t.Fatalf("%+v: the signed id %q was refused: %v", c, id, err)
		}
		if err == nil {
			checkAccepted(t, v, &ev)
			if idH != "" && ev.ID != id {
				t.Fatalf("id %q, signed %q", ev.ID, id)
			}
		}
	})
}

// sendable reports whether id can be sent in a header as it is.
func sendable(id string) bool {
	return strings.TrimSpace(id) == id && id != "" && len(id) <= verify.MaxEventIDLen &&
		!strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f || r == utf8.RuneError })
}
