package verify_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/verify"
)

// TestLargeBodyIDs: bodies large enough that the scan runs beside the MAC
// get the same ids as small ones: the body's id where it carries one
// (WAStack, Vobiz), the first 128 bits of the body's SHA-256 (computed
// here) where it carries none, or never does (Wazera).
func TestLargeBodyIDs(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ts := now.Add(-time.Minute).Format(time.RFC3339)
	for _, size := range []int{1 << 10, 512 << 10} {
		note := strings.Repeat("x", size)
		for _, tc := range []struct {
			provider, body, id string
		}{
			{verify.WAStack, `{"id":"evt_ws","event":"message.received","timestamp":"` + ts + `","note":"` + note + `","data":{}}`, "evt_ws"},
			{verify.WAStack, `{"event":"message.received","timestamp":"` + ts + `","note":"` + note + `","data":{}}`, ""},
			{verify.Vobiz, `{"event_id":"evt_vb","event":"message.received","timestamp":"` + ts + `","note":"` + note + `","data":{}}`, "evt_vb"},
			{verify.Vobiz, `{"event":"message.received","timestamp":"` + ts + `","note":"` + note + `","data":{}}`, ""},
			{verify.Wazera, `{"event":"message.received","timestamp":"` + ts + `","note":"` + note + `","data":{}}`, ""},
		} {
			v, err := verify.New(tc.provider, verify.Options{Secrets: []string{"whsec_dGVzdC1zZWNyZXQ="}, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			body := []byte(tc.body)
			h, err := v.Sign(body, verify.SignOptions{Time: now})
			if err != nil {
				t.Fatal(err)
			}
			ev, err := v.Verify(h, body)
			if err != nil {
				t.Fatalf("%s, %d bytes: %v", tc.provider, len(body), err)
			}
			want := tc.id
			if want == "" {
				sum := sha256.Sum256(body)
				want = hex.EncodeToString(sum[:16])
			}
			if ev.ID != want {
				t.Errorf("%s, %d bytes, id %q in the body: event id %q, want %q", tc.provider, len(body), tc.id, ev.ID, want)
			}
		}
	}
}
