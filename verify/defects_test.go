package verify_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/verify"
)

// Tests for the defects of issue 10. Each failed on the code before the
// provider struct.

// A custom event-time timestamp with no max_age gets the documented
// default window, and Window reports it.
func TestCustomEventTimeDefaultWindow(t *testing.T) {
	now := time.Unix(1705314600, 0)
	const want = 36*time.Hour + time.Minute // DefaultMaxAge + DefaultFutureSkew
	for _, c := range []verify.Custom{
		{Name: "acme", SignatureHeader: "X-Sig", TimestampField: "ts"},
		{Name: "acme", SignatureHeader: "X-Sig", TimestampField: "ts", TimestampKind: verify.TimestampEvent},
		{Name: "acme", SignatureHeader: "X-Sig", TimestampHeader: "X-Ts", Signed: "{timestamp}.{body}"},
	} {
		for _, tt := range []struct {
			age  time.Duration
			want error
		}{
			{time.Second, nil},
			{time.Hour, nil},
			{35 * time.Hour, nil},
			{37 * time.Hour, verify.ErrTimestampTooOld},
		} {
			v, err := verify.NewCustom(c, verify.Options{Secrets: []string{"s"}, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Window(); got != want {
				t.Errorf("%+v: Window = %s, want %s", c, got, want)
			}
			ts := now.Add(-tt.age)
			body := []byte(`{"ts":` + strconv.FormatInt(ts.Unix(), 10) + `}`)
			h, err := v.Sign(body, verify.SignOptions{Time: ts})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(h, body); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("%+v, %s old: err = %v, want %v", c, tt.age, err, tt.want)
			}
		}
	}
}

// A signed template whose variable parts touch is refused when the config
// loads; a value that holds the literal after it is refused when read.
func TestSignedTemplateSeparators(t *testing.T) {
	for _, tt := range []struct {
		signed string
		ok     bool
	}{
		{"{timestamp}{id}{body}", false},
		{"{id}{timestamp}{body}", false},
		{"{id}{body}", false},
		{"{timestamp}{body}", false},
		{"{id}.{timestamp}{body}", false},
		{"v0:{timestamp}{id}:{body}", false},
		{"{timestamp}0{id}.{body}", false}, // a digit can occur inside a timestamp
		{"{timestamp}1{body}", false},
		{"{id}.{timestamp}.{body}", true},
		{"{timestamp}.{id}.{body}", true},
		{"v0:{timestamp}:{id}:{body}", true},
		{"{id}{timestamp}x{body}", false},
		{"{timestamp}x{id}{body}", false},
		{"{timestamp}x{id}x{body}", true},
		{"{body}", true},
		{"", true},
	} {
		c := verify.Custom{Name: "acme", SignatureHeader: "X-Sig", Signed: tt.signed}
		if strings.Contains(tt.signed, "{id}") {
			c.IDHeader = "X-Id"
		}
		if strings.Contains(tt.signed, "{timestamp}") {
			c.TimestampHeader = "X-Ts"
			c.TimestampKind = verify.TimestampAttempt
		}
		_, err := verify.NewCustom(c, verify.Options{Secrets: []string{"s"}})
		if tt.ok != (err == nil) {
			t.Errorf("signed %q: err = %v, want ok=%v", tt.signed, err, tt.ok)
		}
	}

	// {id}.{timestamp}.{body}: an id holding "." could be split another way.
	now := time.Unix(1705314600, 0)
	v, err := verify.NewCustom(verify.Custom{
		Name: "acme", SignatureHeader: "X-Sig", Signed: "{id}.{timestamp}.{body}",
		IDHeader: "X-Id", TimestampHeader: "X-Ts", TimestampKind: verify.TimestampAttempt,
	}, verify.Options{Secrets: []string{"s"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	for _, tt := range []struct {
		id   string
		want error
	}{
		{"evt_1", nil},
		{"evt.1", verify.ErrMissingEventID},
		{"evt_1.", verify.ErrMissingEventID},
	} {
		h := headers("X-Id", tt.id, "X-Ts", ts, "X-Sig", opensslHex("s", tt.id+"."+ts+"."+string(body)))
		if _, err := v.Verify(h, body); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("id %q: err = %v, want %v", tt.id, err, tt.want)
		}
		if _, err := v.Sign(body, verify.SignOptions{ID: tt.id, Time: now}); (err == nil) != (tt.want == nil) {
			t.Errorf("Sign with id %q: err = %v", tt.id, err)
		}
	}
}

// The standard provider's name is validated as a custom name, and may not
// be a built-in provider's.
func TestStandardName(t *testing.T) {
	for _, tt := range []struct {
		name, want string // want "" means refused
	}{
		{"", "standard"},
		{"standard", "standard"},
		{"acme", "acme"},
		{"acme-prod_2", "acme-prod_2"},
		{"acme:prod", ""},
		{"Acme", ""},
		{"acme prod", ""},
		{strings.Repeat("a", 65), ""},
		{verify.Wazera, ""},
		{verify.Wazapin, ""},
		{verify.Zavu, ""},
	} {
		v, err := verify.New(verify.Standard, verify.Options{Secrets: []string{stdSecret}, Name: tt.name})
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("name %q accepted as %q", tt.name, v.Name())
		case tt.want != "" && err != nil:
			t.Errorf("name %q: %v", tt.name, err)
		case tt.want != "" && v.Name() != tt.want:
			t.Errorf("name %q: Name() = %q, want %q", tt.name, v.Name(), tt.want)
		}
	}
}

// A body with two members of one name, where the gateway reads that name,
// is malformed for every provider; duplicates the gateway does not read
// pass untouched.
func TestDuplicateKeys(t *testing.T) {
	now := time.Unix(1705314600, 0)
	rfc := now.UTC().Format(time.RFC3339)
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	custom := verify.Custom{Name: "acme", SignatureHeader: "X-Sig", IDField: "event.id", TypeField: "type", TimestampField: "ts"}
	for _, tt := range []struct {
		provider string
		body     string
		dup      bool
	}{
		{verify.Wazera, `{"event":"message.read","timestamp":"` + rfc + `","event":"message.failed","data":{}}`, true},
		{verify.Wazera, `{"event":"message.read","timestamp":"` + rfc + `","timestamp":"2020-01-01T00:00:00Z"}`, true},
		{verify.Wazera, `{"event":"message.read","timestamp":"` + rfc + `","data":{"message_id":"a","message_id":"b"}}`, true},
		{verify.Wazera, `{"event":"message.read","timestamp":"` + rfc + `","data":{"status":"read"},"data":{"status":"failed"}}`, true},
		{verify.Wazera, `{"event":"message.read","timestamp":"` + rfc + `","\u0065vent":"message.failed"}`, true},
		{verify.Wazera, `{"event":"message.read","timestamp":"` + rfc + `","Event":"message.failed"}`, true}, // encoding/json into a struct folds case
		{verify.Wazera, `{"event":"message.read","timestamp":"` + rfc + `","note":1,"note":2,"data":{"x":1,"x":2,"deep":{"message_id":1,"message_id":2}}}`, false},
		{verify.Zavu, `{"id":"evt_1","type":"message.sent","timestamp":` + ms + `,"id":"evt_2"}`, true},
		{verify.Zavu, `{"id":"evt_1","type":"message.sent","timestamp":` + ms + `,"projectId":"p","projectId":"q"}`, true},
		{verify.Zavu, `{"id":"evt_1","type":"message.sent","timestamp":` + ms + `,"extra":1,"extra":2}`, false},
		{verify.WAStack, `{"event_id":"e1","event":"message.sent","timestamp":"` + rfc + `","event_id":"e2"}`, true},
		{verify.WAStack, `{"event":"message.sent","timestamp":"` + rfc + `","session_id":"a","session_id":"b"}`, true},
		{verify.Wazapin, `{"message_id":"m","status":"read","status":"failed"}`, true},
		{verify.Wazapin, `{"message_id":"m","event_type":"message.sent","event_type":"message.failed"}`, true},
		{verify.Wazapin, `{"message_id":"m","status":"read","ignored":[1],"ignored":[2]}`, false},
		{verify.Vobiz, `{"event_id":"u1","event_type":"message.read","occurred_at":"` + rfc + `","event_id":"u2"}`, true},
		{verify.Vobiz, `{"event_id":"u1","event_type":"message.read","occurred_at":"` + rfc + `","payload":{"message_id":"a","message_id":"b"}}`, true},
		{verify.Vobiz, `{"event_id":"u1","event_type":"message.read","occurred_at":"` + rfc + `","payload":{"message_id":"a"},"payload":{}}`, true},
		{verify.Standard, `{"type":"a.b","type":"c.d"}`, true},
		{verify.Standard, `{"type":"a.b","data":{"status":"x","status":"y"}}`, true},
		{"custom", `{"type":"a","event":{"id":"e1","id":"e2"},"ts":` + strconv.FormatInt(now.Unix(), 10) + `}`, true},
		{"custom", `{"type":"a","event":{"id":"e1"},"event":{"id":"e2"},"ts":` + strconv.FormatInt(now.Unix(), 10) + `}`, true},
		{"custom", `{"type":"a","event":{"id":"e1"},"ts":1,"ts":` + strconv.FormatInt(now.Unix(), 10) + `}`, true},
		{"custom", `{"type":"a","event":{"id":"e1","x":1,"x":2},"ts":` + strconv.FormatInt(now.Unix(), 10) + `}`, false},
	} {
		opts := verify.Options{Secrets: []string{wazapinSecret}, Now: func() time.Time { return now }}
		var v *verify.Verifier
		var err error
		if tt.provider == "custom" {
			v, err = verify.NewCustom(custom, opts)
		} else {
			v, err = verify.New(tt.provider, opts)
		}
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(tt.body)
		h, err := v.Sign(body, verify.SignOptions{ID: "msg_1", Time: now})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := v.Verify(h, body)
		if tt.dup {
			if !errors.Is(err, verify.ErrMalformedBody) {
				t.Errorf("%s %s: err = %v, want ErrMalformedBody", tt.provider, tt.body, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", tt.provider, tt.body, err)
		} else if string(ev.Payload()) != tt.body {
			t.Errorf("%s: payload changed", tt.provider)
		}
	}
}

// Standard Webhooks: a request missing a signed header cannot be
// authenticated (401 class, ErrMissingSignature or ErrMissingTimestamp), for
// every scheme that signs it.
func TestMissingSignedHeaders(t *testing.T) {
	now := time.Unix(1705314600, 0)
	opts := verify.Options{Secrets: []string{wazapinSecret}, Now: func() time.Time { return now }}
	custom, err := verify.NewCustom(verify.Custom{
		Name: "acme", SignatureHeader: "X-Sig", Signed: "{id}.{timestamp}.{body}",
		IDHeader: "X-Id", TimestampHeader: "X-Ts", TimestampKind: verify.TimestampAttempt,
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	vs := []*verify.Verifier{custom}
	for _, p := range []string{verify.Standard, verify.Wazapin} {
		v, err := verify.New(p, opts)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	body := []byte(`{"message_id":"m","status":"read"}`)
	for _, v := range vs {
		for _, form := range v.Forms() {
			signed, err := v.Sign(body, verify.SignOptions{Form: form.Name, ID: "msg_1", Time: now})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(signed, body); err != nil {
				t.Fatalf("%s/%s: complete request refused: %v", v.Name(), form.Name, err)
			}
			for name := range signed {
				h := signed.Clone()
				h.Del(name)
				_, err := v.Verify(h, body)
				if !errors.Is(err, verify.ErrMissingSignature) && !errors.Is(err, verify.ErrMissingTimestamp) {
					t.Errorf("%s/%s without %s: err = %v, want missing signature or timestamp", v.Name(), form.Name, name, err)
				}
				if errors.Is(err, verify.ErrMissingEventID) || errors.Is(err, verify.ErrMalformedBody) {
					t.Errorf("%s/%s without %s: err = %v is a 400 class error", v.Name(), form.Name, name, err)
				}
			}
		}
	}
}

// whsec_ secrets in padded and unpadded standard base64 give the same key;
// anything else is refused.
func TestWhsecSecretForms(t *testing.T) {
	h := http.Header{}
	h.Set("Webhook-Id", "msg_2Lq8vTQk9bYpZf3R")
	h.Set("Webhook-Timestamp", "1705314600")
	h.Set("Webhook-Signature", wazapinSig)
	body := vector(t, "wazapin")
	for _, tt := range []struct {
		secret string
		ok     bool
	}{
		{wazapinSecret, true},                               // padded
		{strings.TrimRight(wazapinSecret, "="), true},       // unpadded
		{strings.TrimPrefix(wazapinSecret, "whsec_"), true}, // no prefix, as the reference libraries
		{wazapinSecret[:len(wazapinSecret)-1], false},       // half the padding
		{"whsec_", false},
		{"whsec_====", false},
		{"whsec_not*base64", false},
		{"whsec_-_-_", false}, // URL alphabet
		{"whsec_dGVzdA== ", false},
	} {
		v, err := verify.New(verify.Wazapin, verify.Options{Secrets: []string{tt.secret}, Now: clock("2024-01-15T10:30:30Z")})
		if !tt.ok {
			if err == nil {
				t.Errorf("secret %q accepted", tt.secret)
			} else if strings.Contains(err.Error(), strings.TrimPrefix(tt.secret, "whsec_")) && len(tt.secret) > 8 {
				t.Errorf("error %q repeats the secret", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("secret %q: %v", tt.secret, err)
			continue
		}
		if _, err := v.Verify(h, body); err != nil {
			t.Errorf("secret %q: %v", tt.secret, err)
		}
	}
}
