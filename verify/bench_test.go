package verify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/internal/testutil"
	"github.com/wagate/caddy-webhook/verify"
	"github.com/wagate/caddy-webhook/verify/samples"
)

// benchEvents is one representative event per provider.
var benchEvents = map[string]string{
	verify.Wazera:  "message.received",
	verify.Zavu:    "message.inbound",
	verify.WAStack: "message.received",
	verify.Wazapin: "message.new",
	verify.Vobiz:   "message.received",
}

// Padding texts: message text with escapes and non-ASCII letters (the
// scanner's slow paths, every few dozen bytes), and plain ASCII.
const (
	mixedText = `Halo kak, saya mau tanya stok barang yang kemarin, apakah masih ada? Terima kasih \"banyak\" ya. Café ✓\n`
	asciiText = `Hello, I would like to know whether the order I placed yesterday has shipped yet, thanks a lot for the help. `
)

// paddedBody returns the provider's sample grown to size bytes with a long
// message text made of line.
func paddedBody(tb testing.TB, provider string, size int, t time.Time, line string) []byte {
	body, err := samples.Body(provider, benchEvents[provider], samples.Values{ID: "bench01", Time: t})
	if err != nil {
		tb.Fatal(err)
	}
	pad := size - len(body) - len(`"note":"",`)
	if pad < 0 {
		tb.Fatalf("sample is larger than %d bytes", size)
	}
	var sb strings.Builder
	for sb.Len() < pad {
		sb.WriteString(line)
	}
	note := sb.String()[:pad]
	for strings.HasSuffix(note, `\`) || !validUTF8Tail(note) { // do not cut an escape or a rune in half
		note = note[:len(note)-1] + " "
	}
	out := append([]byte(`{"note":"`+note+`",`), body[1:]...)
	return out
}

func validUTF8Tail(s string) bool { return strings.ToValidUTF8(s, "") == s }

var benchSizes = []struct {
	name string
	size int
	text string
}{{"1KB", 1 << 10, mixedText}, {"1MB", 1 << 20, mixedText}, {"1MB-ascii", 1 << 20, asciiText}}

// BenchmarkVerify measures Verify plus AppendCloudEventHead into a reused
// buffer: all the CPU work the gateway does per request in verify/ (it
// forwards head, body and tail without copying the body).
func BenchmarkVerify(b *testing.B) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, size := range benchSizes {
		for _, p := range []string{verify.Wazera, verify.Zavu, verify.WAStack, verify.Wazapin, verify.Vobiz} {
			b.Run(size.name+"/"+p, func(b *testing.B) {
				v, err := verify.New(p, verify.Options{Secrets: []string{"whsec_YmVuY2gtc2VjcmV0"}, Now: func() time.Time { return now }})
				if err != nil {
					b.Fatal(err)
				}
				body := paddedBody(b, p, size.size, now.Add(-time.Second), size.text)
				h, _ := v.Sign(body, verify.SignOptions{ID: "msg_bench", Time: now})
				buf := make([]byte, 0, 1024)
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				cpu := testutil.StartCPU(b)
				for b.Loop() {
					ev, err := v.Verify(h, body)
					if err != nil {
						b.Fatal(err)
					}
					buf = ev.AppendCloudEventHead(buf[:0])
				}
				cpu.Report()
			})
		}
	}
}

// BenchmarkHMAC is the baseline: bare crypto/hmac over the same bytes,
// once with a fresh HMAC per request (what most handlers do) and once
// reusing one with Reset (the floor).
func BenchmarkHMAC(b *testing.B) {
	key := []byte("bench-secret")
	for _, size := range benchSizes {
		body := paddedBody(b, verify.Wazera, size.size, time.Now(), size.text)
		b.Run(size.name+"/new", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			cpu := testutil.StartCPU(b)
			for b.Loop() {
				m := hmac.New(sha256.New, key)
				m.Write(body)
				m.Sum(nil)
			}
			cpu.Report()
		})
		b.Run(size.name+"/reset", func(b *testing.B) {
			m := hmac.New(sha256.New, key)
			var out [sha256.Size]byte
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				m.Reset()
				m.Write(body)
				m.Sum(out[:0])
			}
		})
	}
}

func TestPaddedBodyIsValid(t *testing.T) {
	now := time.Now()
	for p := range benchEvents {
		for _, size := range benchSizes {
			body := paddedBody(t, p, size.size, now, size.text)
			if len(body) != size.size {
				t.Errorf("%s %s: %d bytes", p, size.name, len(body))
			}
			v, _ := verify.New(p, verify.Options{Secrets: []string{"whsec_YmVuY2gtc2VjcmV0"}})
			h, _ := v.Sign(body, verify.SignOptions{})
			if _, err := v.Verify(h, body); err != nil {
				t.Errorf("%s %s: %v", p, size.name, err)
			}
		}
	}
}
