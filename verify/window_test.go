package verify_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/verify"
	"github.com/wagate/caddy-webhook/verify/samples"
)

// TestWindowIsWhatVerifyApplies probes, for every built-in provider and
// custom timestamp kinds, the clock times at which one signed request is
// accepted: from when its timestamp is FutureSkew ahead of the clock to when
// it is as old as the window. The longest such span must be Window(), and
// a request is accepted at both ends and refused a millisecond beyond.
func TestWindowIsWhatVerifyApplies(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var clock time.Time
	now := func() time.Time { return clock }
	type probe struct {
		name string
		v    *verify.Verifier
		h    http.Header
		body []byte
	}
	var probes []probe
	add := func(name string, v *verify.Verifier, form string) {
		t.Helper()
		events := samples.Events(v.Name())
		body := []byte(`{"ts":` + strconv.FormatInt(t0.Unix(), 10) + `}`)
		if len(events) > 0 {
			var err error
			if body, err = samples.Body(v.Name(), events[0], samples.Values{ID: "w1", Time: t0}); err != nil {
				t.Fatal(err)
			}
		}
		h, err := v.Sign(body, verify.SignOptions{Form: form, ID: "msg_w1", Time: t0})
		if err != nil {
			t.Fatal(err)
		}
		probes = append(probes, probe{name + "/" + form, v, h, body})
	}
	for _, p := range verify.Providers() {
		v, err := verify.New(p, verify.Options{Secrets: []string{wazapinSecret}, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range v.Forms() {
			add(p, v, f.Name)
		}
	}
	for _, c := range []verify.Custom{
		{Name: "event-field", SignatureHeader: "X-Sig", TimestampField: "ts"},
		{Name: "attempt-field", SignatureHeader: "X-Sig", TimestampField: "ts", TimestampKind: verify.TimestampAttempt},
		{Name: "event-header", SignatureHeader: "X-Sig", TimestampHeader: "X-Ts", Signed: "{timestamp}.{body}"},
		{Name: "attempt-header", SignatureHeader: "X-Sig", TimestampHeader: "X-Ts", Signed: "{timestamp}.{body}", TimestampKind: verify.TimestampAttempt},
	} {
		v, err := verify.NewCustom(c, verify.Options{Secrets: []string{"s"}, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		add(c.Name, v, "custom")
	}

	longest := map[*verify.Verifier]time.Duration{}
	for _, p := range probes {
		accepted := func(at time.Time) bool {
			clock = at
			_, err := p.v.Verify(p.h, p.body)
			return err == nil
		}
		if !accepted(t0) {
			t.Fatalf("%s: refused at its own timestamp", p.name)
		}
		// the edges, by bisection over a week either side, to the nanosecond
		edge := func(out, in time.Time) time.Time {
			for out.Sub(in).Abs() > time.Nanosecond {
				mid := in.Add(out.Sub(in) / 2)
				if accepted(mid) {
					in = mid
				} else {
					out = mid
				}
			}
			return in
		}
		first := edge(t0.Add(-7*24*time.Hour), t0)
		last := edge(t0.Add(7*24*time.Hour), t0)
		span := last.Sub(first)
		const eps = time.Millisecond
		if !accepted(first) || !accepted(last) || accepted(first.Add(-eps)) || accepted(last.Add(eps)) {
			t.Errorf("%s: edges %s and %s are not sharp", p.name, first, last)
		}
		if span > p.v.Window() {
			t.Errorf("%s: accepted for %s, longer than Window() %s", p.name, span, p.v.Window())
		}
		longest[p.v] = max(longest[p.v], span)
	}
	for v, span := range longest {
		if span != v.Window() {
			t.Errorf("%s: Window() = %s, but Verify accepts one request for %s", v.Name(), v.Window(), span)
		}
	}
}

// TestWindowWithoutTimestamp: a custom provider without a timestamp has
// no window, and accepts a request at any time.
func TestWindowWithoutTimestamp(t *testing.T) {
	v, err := verify.NewCustom(verify.Custom{Name: "x", SignatureHeader: "X-S"}, verify.Options{Secrets: []string{"s"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Window() != 0 {
		t.Errorf("Window = %s, want 0", v.Window())
	}
}
