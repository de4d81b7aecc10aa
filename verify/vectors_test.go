package verify_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/verify"
)

// Expected MACs, computed with openssl by testdata/vectors.sh (not by the
// code under test) over the files in testdata/vectors. Rerun the script and
// paste its output here when a vector changes.
const (
	// wazera: hex HMAC-SHA256 of vectors/wazera.json, key wz_test_secret
	wazeraSig = "e5b5e079092834d9464ca20632ee986c9a9b14530afd4de410d27d0d0ac0c3bd"
	// wazera event id: first 128 bits of SHA-256 of the body, hex
	wazeraID         = "de45c2dd7bf381919bb7112be2ade2fb"
	wazeraSigRotated = "26270752ccbbb0697a926553410336a3af237e3261412c875fc5f04576ba6025"
	// zavu: key whsec_zavu_test (raw bytes); v1 over the body, v2 over "1705312210." + body
	zavuV1 = "f55742f4d95b4435e28972065a1957fd8d70a013ed430a6491186e81bcbd4ef4"
	zavuV2 = "cee8572c5dd3f117d9afaa4a107f9a20e4631137d8a5a67b830234d83ca10473"
	// wastack: key wastack_test_secret
	wastackSig = "e7f0673c90cc463c776130bc16ca82768eac70e4306f954922c8b9b52f85e34b"
	// standard webhooks published vector, recomputed: id.timestamp.body under the decoded whsec key
	standardSig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	// wazapin: id msg_2Lq8vTQk9bYpZf3R, timestamp 1705314600, key whsec_dGVzdC13YXphcGluLXNlY3JldC0wMQ==
	wazapinSig = "v1,iLrnpxsLf6HtTtgmA3Voz5q5+Q9atQftJW9pqMaVt3A="
	// vobiz: key vobiz_test_secret, hex and base64
	vobizHex    = "642977d35ab06a536031108eac4ef7095f33b803ba4df65e8e2c9e892a979aba"
	vobizBase64 = "ZCl301qwalNgMRCOrE73CV8zuAO6TfZejiyeiSqXmro="
	// custom: Slack-style "v0:1705314600:" + body, sha256 hex; sha512 base64 and sha1 hex over the body; key custom_test_secret
	customSlack  = "8b570c04951eb63ce95adba8fc4b0c09fcc3b886b2eba40e712a752b292d1afa"
	customSHA512 = "OI4CsIkL6R2wK7M+Sf7HDJn2xRPoUsBP2hge557OealjkvvW2i/tLBxNTS8QGL1G/hd5zw4ajsndF8MJnwSxag=="
	customSHA1   = "19cc71971e57dacf09b147a3793a315f6bb34048"
)

// The test vector published with the Standard Webhooks reference libraries.
const (
	stdSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	stdID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	stdTS     = "1614265330"
	stdBody   = `{"test": 2432232314}`
)

const wazapinSecret = "whsec_dGVzdC13YXphcGluLXNlY3JldC0wMQ=="

func vector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vectors", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func clock(rfc3339 string) func() time.Time {
	t, err := time.Parse(time.RFC3339, rfc3339)
	if err != nil {
		panic(err)
	}
	return func() time.Time { return t }
}

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// vectorCase is one independently computed request and what it must yield.
type vectorCase struct {
	name     string
	provider string
	custom   *verify.Custom
	opts     verify.Options
	header   http.Header
	body     []byte
	// expectations
	id, typ, providerType string
	time                  string // RFC 3339, "" for none
	fields                map[verify.Field]string
}

func vectorCases(t testing.TB) []vectorCase {
	return []vectorCase{
		{
			name: "wazera seed", provider: verify.Wazera,
			opts:   verify.Options{Secrets: []string{"wz_test_secret"}, Now: clock("2024-01-15T10:31:00Z")},
			header: headers("X-Wazera-Signature", wazeraSig),
			body:   vector(t, "wazera"),
			id:     wazeraID, typ: "message.delivered", providerType: "message.delivered",
			time: "2024-01-15T10:30:00Z",
			fields: map[verify.Field]string{
				verify.FieldMessageID: "msg_abc123", verify.FieldTo: "201234567890", verify.FieldStatus: "delivered",
			},
		},
		{
			name: "zavu seed form", provider: verify.Zavu,
			opts:   verify.Options{Secrets: []string{"whsec_zavu_test"}, Now: clock("2024-01-15T09:50:10Z")},
			header: headers("X-Zavu-Signature", "sha256="+zavuV1),
			body:   vector(t, "zavu"),
			id:     "evt_1705312205000_ghi789", typ: "message.delivered", providerType: "message.delivered",
			time: "2024-01-15T09:50:05Z",
			fields: map[verify.Field]string{
				verify.FieldMessageID: "k57msg789xyz", verify.FieldTo: "+56912345678", verify.FieldChannel: "sms",
				verify.FieldStatus: "delivered", verify.FieldAccountID: "k57abc123def456",
			},
		},
		{
			name: "zavu current form v1+v2", provider: verify.Zavu,
			opts:   verify.Options{Secrets: []string{"whsec_zavu_test"}, Now: clock("2024-01-15T09:50:10Z")},
			header: headers("X-Zavu-Signature", "t=1705312210,v1="+zavuV1+",v2="+zavuV2),
			body:   vector(t, "zavu"),
			id:     "evt_1705312205000_ghi789", typ: "message.delivered", providerType: "message.delivered",
			time: "2024-01-15T09:50:05Z",
		},
		{
			name: "zavu current form v1 only", provider: verify.Zavu,
			opts:   verify.Options{Secrets: []string{"whsec_zavu_test"}, Now: clock("2024-01-15T09:50:10Z")},
			header: headers("X-Zavu-Signature", "t=1705312210,v1="+zavuV1),
			body:   vector(t, "zavu"),
			id:     "evt_1705312205000_ghi789", typ: "message.delivered", providerType: "message.delivered",
			time: "2024-01-15T09:50:05Z",
		},
		{
			name: "wastack", provider: verify.WAStack,
			opts:   verify.Options{Secrets: []string{"wastack_test_secret"}, Now: clock("2024-01-15T03:31:00Z")},
			header: headers("X-WAStack-Signature", "sha256="+wastackSig),
			body:   vector(t, "wastack"),
			id:     "wse_7d1f", typ: "message.received", providerType: "message.received",
			time: "2024-01-15T03:30:00Z",
			fields: map[verify.Field]string{
				verify.FieldSessionID: "sess_01", verify.FieldMessageID: "wamid.HBgM",
				verify.FieldFrom: "6281234567890", verify.FieldText: "Halo \"kak\" é ✓",
			},
		},
		{
			name: "standard webhooks published vector", provider: verify.Standard,
			opts:   verify.Options{Secrets: []string{stdSecret}, Now: clock("2021-02-25T15:02:10Z")},
			header: headers("Webhook-Id", stdID, "Webhook-Timestamp", stdTS, "Webhook-Signature", standardSig),
			body:   []byte(stdBody),
			id:     stdID, typ: "unknown", providerType: "unknown", time: "2021-02-25T15:02:10Z",
		},
		{
			name: "standard webhooks published vector, svix headers", provider: verify.Standard,
			opts:   verify.Options{Secrets: []string{stdSecret}, Now: clock("2021-02-25T15:02:10Z")},
			header: headers("Svix-Id", stdID, "Svix-Timestamp", stdTS, "Svix-Signature", standardSig),
			body:   []byte(stdBody),
			id:     stdID, typ: "unknown", providerType: "unknown", time: "2021-02-25T15:02:10Z",
		},
		{
			name: "wazapin status update", provider: verify.Wazapin,
			opts:   verify.Options{Secrets: []string{wazapinSecret}, Now: clock("2024-01-15T10:30:30Z")},
			header: headers("Webhook-Id", "msg_2Lq8vTQk9bYpZf3R", "Webhook-Timestamp", "1705314600", "Webhook-Signature", wazapinSig),
			body:   vector(t, "wazapin"),
			id:     "msg_2Lq8vTQk9bYpZf3R", typ: "message.delivered", providerType: "message.status_update",
			time: "2024-01-15T10:30:00Z",
			fields: map[verify.Field]string{
				verify.FieldMessageID: "9f1fd66d-c37a-4b50-a8c2-b4dca523f9c8", verify.FieldStatus: "delivered",
				verify.FieldAccountID: "org_123", verify.FieldConversationID: "0f89b0f9-74b4-44f9-b9b6-48f6d4de57aa",
			},
		},
		{
			name: "wazapin, svix headers and a second entry", provider: verify.Wazapin,
			opts:   verify.Options{Secrets: []string{wazapinSecret}, Now: clock("2024-01-15T10:30:30Z")},
			header: headers("Svix-Id", "msg_2Lq8vTQk9bYpZf3R", "Svix-Timestamp", "1705314600", "Svix-Signature", "v1a,bm90LWNoZWNrZWQ= v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= "+wazapinSig),
			body:   vector(t, "wazapin"),
			id:     "msg_2Lq8vTQk9bYpZf3R", typ: "message.delivered", providerType: "message.status_update",
			time: "2024-01-15T10:30:00Z",
		},
		{
			name: "vobiz current form, hex", provider: verify.Vobiz,
			opts:   verify.Options{Secrets: []string{"vobiz_test_secret"}, Now: clock("2024-01-15T10:30:05Z")},
			header: headers("X-Webhook-Signature", vobizHex, "X-Webhook-Event", "message.failed"),
			body:   vector(t, "vobiz"),
			id:     "3b241101-e2bb-4255-8caf-4136c566a962", typ: "message.failed", providerType: "message.failed",
			time: "2024-01-15T10:30:00Z",
			fields: map[verify.Field]string{
				verify.FieldMessageID: "wamid.X1", verify.FieldErrorCode: "131047",
				verify.FieldErrorMessage: "Re-engagement message", verify.FieldAccountID: "acc_9f2c",
			},
		},
		{
			name: "vobiz current form, base64 with prefix", provider: verify.Vobiz,
			opts:   verify.Options{Secrets: []string{"vobiz_test_secret"}, Now: clock("2024-01-15T10:30:05Z")},
			header: headers("X-Webhook-Signature", "sha256="+vobizBase64),
			body:   vector(t, "vobiz"),
			id:     "3b241101-e2bb-4255-8caf-4136c566a962", typ: "message.failed", providerType: "message.failed",
			time: "2024-01-15T10:30:00Z",
		},
		{
			name: "vobiz seed form, hex with prefix", provider: verify.Vobiz,
			opts:   verify.Options{Secrets: []string{"vobiz_test_secret"}, Now: clock("2024-01-15T10:30:05Z")},
			header: headers("X-Vobiz-Signature", "sha256="+vobizHex),
			body:   vector(t, "vobiz"),
			id:     "3b241101-e2bb-4255-8caf-4136c566a962", typ: "message.failed", providerType: "message.failed",
			time: "2024-01-15T10:30:00Z",
		},
		{
			name: "vobiz seed form, unpadded url base64", provider: verify.Vobiz,
			opts:   verify.Options{Secrets: []string{"vobiz_test_secret"}, Now: clock("2024-01-15T10:30:05Z")},
			header: headers("X-Vobiz-Signature", strings.NewReplacer("+", "-", "/", "_", "=", "").Replace(vobizBase64)),
			body:   vector(t, "vobiz"),
			id:     "3b241101-e2bb-4255-8caf-4136c566a962", typ: "message.failed", providerType: "message.failed",
			time: "2024-01-15T10:30:00Z",
		},
		{
			name: "custom slack style", custom: &verify.Custom{
				Name: "acme", SignatureHeader: "X-Acme-Signature", SignaturePrefix: "v0=",
				Signed: "v0:{timestamp}:{body}", TimestampHeader: "X-Acme-Timestamp", TimestampKind: verify.TimestampAttempt,
				IDField: "event.id", TypeField: "type",
			},
			opts:   verify.Options{Secrets: []string{"custom_test_secret"}, Now: clock("2024-01-15T10:32:00Z")},
			header: headers("X-Acme-Signature", "v0="+customSlack, "X-Acme-Timestamp", "1705314600"),
			body:   vector(t, "custom"),
			id:     "ev_881", typ: "order.paid", providerType: "order.paid", time: "2024-01-15T10:30:00Z",
			fields: map[verify.Field]string{verify.FieldStatus: "paid"},
		},
		{
			name: "custom sha512 base64, event time from the body", custom: &verify.Custom{
				Name: "acme", SignatureHeader: "X-Sig", Algorithm: "sha512", Encoding: "base64",
				TimestampField: "ts", TypeField: "type", TypeHeader: "X-Event",
			},
			opts:   verify.Options{Secrets: []string{"custom_test_secret"}, MaxAge: time.Hour, Now: clock("2024-01-15T10:50:00Z")},
			header: headers("X-Sig", customSHA512, "X-Event", "ignored.because.body.has.type"),
			body:   vector(t, "custom"),
			id:     "", typ: "order.paid", providerType: "order.paid", time: "2024-01-15T10:30:00Z",
		},
		{
			name: "custom sha1 hex, no timestamp, id derived", custom: &verify.Custom{
				Name: "legacy", SignatureHeader: "X-Hub-Signature", SignaturePrefix: "sha1=", Algorithm: "sha1",
			},
			opts:   verify.Options{Secrets: []string{"custom_test_secret"}},
			header: headers("X-Hub-Signature", "sha1="+customSHA1),
			body:   vector(t, "custom"),
			// first 128 bits of SHA-256 of the body: openssl dgst -sha256 testdata/vectors/custom.json
			id: "3ab93c68f55c9dbb13ea758b4ae72f5f", typ: "unknown", providerType: "unknown",
		},
	}
}

func newVerifier(t testing.TB, c vectorCase) *verify.Verifier {
	t.Helper()
	var v *verify.Verifier
	var err error
	if c.custom != nil {
		v, err = verify.NewCustom(*c.custom, c.opts)
	} else {
		v, err = verify.New(c.provider, c.opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVectors(t *testing.T) {
	for _, c := range vectorCases(t) {
		t.Run(c.name, func(t *testing.T) {
			ev, err := newVerifier(t, c).Verify(c.header, c.body)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.id != "" && ev.ID != c.id {
				t.Errorf("ID = %q, want %q", ev.ID, c.id)
			}
			if ev.ID == "" {
				t.Error("empty ID")
			}
			if ev.Type != c.typ || ev.ProviderType != c.providerType {
				t.Errorf("Type, ProviderType = %q, %q, want %q, %q", ev.Type, ev.ProviderType, c.typ, c.providerType)
			}
			if got := ev.Time.UTC().Format(time.RFC3339); c.time != "" && got != c.time {
				t.Errorf("Time = %s, want %s", got, c.time)
			}
			if c.time == "" && !ev.Time.IsZero() {
				t.Errorf("Time = %s, want none", ev.Time)
			}
			for f, want := range c.fields {
				if got, ok := ev.Field(f); !ok || got != want {
					t.Errorf("%s = %q (%v), want %q", f, got, ok, want)
				}
			}
			checkCloudEvent(t, &ev)
		})
	}
}

// checkCloudEvent decodes the normalised output with encoding/json and
// checks it against the event, and that the payload is the body byte for byte.
func checkCloudEvent(t *testing.T, ev *verify.Event) {
	t.Helper()
	out := ev.AppendCloudEvent(nil)
	var ce struct {
		SpecVersion     string                     `json:"specversion"`
		ID              string                     `json:"id"`
		Source          string                     `json:"source"`
		Type            string                     `json:"type"`
		Time            *time.Time                 `json:"time"`
		DataContentType string                     `json:"datacontenttype"`
		ProviderEvent   string                     `json:"providerevent"`
		Data            map[string]any             `json:"data"`
		Raw             map[string]json.RawMessage `json:"-"`
	}
	if err := json.Unmarshal(out, &ce); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if ce.SpecVersion != "1.0" || ce.ID != ev.ID || ce.Source != ev.Provider || ce.Type != ev.Type ||
		ce.ProviderEvent != ev.ProviderType || ce.DataContentType != "application/json" {
		t.Errorf("envelope = %+v, event = %+v", ce, ev)
	}
	if ev.Time.IsZero() != (ce.Time == nil) || (ce.Time != nil && !ce.Time.Equal(ev.Time)) {
		t.Errorf("time = %v, want %v", ce.Time, ev.Time)
	}
	var data struct {
		Payload json.RawMessage `json:"payload"`
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(out, &env); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(env.Data, &data); err != nil {
		t.Fatal(err)
	}
	if string(data.Payload) != strings.Trim(string(ev.Body), " \t\r\n") {
		t.Errorf("payload differs from the body:\n got %s\nwant %s", data.Payload, ev.Body)
	}
	for f := verify.FieldMessageID; f <= verify.FieldReason; f++ {
		want, ok := ev.Field(f)
		got, present := ce.Data[f.String()]
		if ok != present || (ok && got != want) {
			t.Errorf("data.%s = %v (%v), want %q (%v)", f, got, present, want, ok)
		}
	}
}

// TestVectorsFailOnFlippedByte checks that one changed byte anywhere the
// signature covers (body, id, timestamp) or in the signature fails.
func TestVectorsFailOnFlippedByte(t *testing.T) {
	for _, c := range vectorCases(t) {
		t.Run(c.name, func(t *testing.T) {
			v := newVerifier(t, c)
			for i := 0; i < len(c.body); i++ {
				body := append([]byte(nil), c.body...)
				body[i] ^= 0x01
				if _, err := v.Verify(c.header, body); !errors.Is(err, verify.ErrNoMatch) {
					t.Fatalf("body byte %d flipped: err = %v, want ErrNoMatch", i, err)
				}
			}
			for name := range c.header {
				if name == "X-Webhook-Event" || name == "X-Event" {
					continue // not signed, by design
				}
				val := c.header.Get(name)
				h := c.header.Clone()
				h.Set(name, flipLast(val))
				if _, err := v.Verify(h, c.body); err == nil {
					t.Errorf("%s last character changed: accepted", name)
				} else if !errors.Is(err, verify.ErrNoMatch) && !errors.Is(err, verify.ErrMalformedSignature) {
					t.Errorf("%s last character changed: err = %v, want no match or malformed", name, err)
				}
			}
		})
	}
}

// flipLast changes the last character to another of the same alphabet, so
// that hex stays hex, base64 stays base64 and digits stay digits.
func flipLast(s string) string {
	last := s[len(s)-1]
	var r byte
	switch {
	case last == '=':
		// base64 padding: change the character before it instead
		return flipLast(s[:len(s)-1]) + "="
	case last >= '0' && last <= '8':
		r = last + 1
	case last == '9':
		r = '8'
	case last == 'a' || last == 'A':
		r = last + 1
	default:
		r = 'a'
	}
	return s[:len(s)-1] + string(r)
}

func TestRotation(t *testing.T) {
	body := vector(t, "wazera")
	now := clock("2024-01-15T10:31:00Z")
	signedOld := headers("X-Wazera-Signature", wazeraSig)
	signedNew := headers("X-Wazera-Signature", wazeraSigRotated)
	tests := []struct {
		secrets []string
		h       http.Header
		ok      bool
	}{
		{[]string{"wz_test_secret"}, signedOld, true},
		{[]string{"wz_test_secret"}, signedNew, false},                   // not yet rotated in
		{[]string{"wz_test_secret", "wz_new_secret"}, signedNew, true},   // rotated in
		{[]string{"wz_test_secret", "wz_new_secret"}, signedOld, true},   // both during the rotation
		{[]string{"wz_new_secret"}, signedOld, false},                    // rotated out
		{[]string{"wz_new_secret", "wz_test_secret2"}, signedOld, false}, // neither
	}
	for i, tt := range tests {
		v, err := verify.New(verify.Wazera, verify.Options{Secrets: tt.secrets, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(tt.h, body)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, verify.ErrNoMatch)) {
			t.Errorf("case %d (secrets %v): err = %v, want ok=%v", i, tt.secrets, err, tt.ok)
		}
	}
}
