package verify

import (
	"strings"
	"testing"
)

// BenchmarkScan measures the JSON scanner alone over 1 MB: message text
// with escapes and non-ASCII letters, and plain ASCII text.
func BenchmarkScan(b *testing.B) {
	for _, tc := range []struct{ name, line string }{
		{"mixed", `Halo kak, saya mau tanya stok barang yang kemarin, apakah masih ada? Terima kasih \"banyak\" ya. Café ✓\n`},
		{"ascii", `Hello, I would like to know whether the order I placed yesterday has shipped yet, thanks a lot for the help. `},
	} {
		var sb strings.Builder
		sb.WriteString(`{"event":"message.received","timestamp":"2024-01-15T10:30:00Z","data":{"text":"`)
		for sb.Len() < 1<<20 {
			sb.WriteString(tc.line)
		}
		sb.WriteString(`"}}`)
		body := []byte(sb.String())
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var ev Event
				if err := scanBody(body, testLayout, &ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
