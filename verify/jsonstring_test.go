package verify

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strings"
	"testing"
	"unicode/utf8"
)

// appendJSONStringRef is AppendJSONString as it was before the eight-byte
// fast path: one byte at a time. It is the reference the fuzz target holds
// the fast version to, byte for byte.
func appendJSONStringRef[T string | []byte](dst []byte, s T) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRune([]byte(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// stdlibJSONString is s as encoding/json writes it with HTML escaping off,
// with one difference undone: since Go 1.22 encoding/json writes U+0008 and
// U+000C as \b and \f, where AppendJSONString keeps \u0008 and \u000c (the
// archive's bytes do not change with the toolchain). Both are valid JSON
// for the same string.
func stdlibJSONString(tb testing.TB, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		tb.Fatal(err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			out = append(out, b[i])
			continue
		}
		i++ // the escape's letter: an escaped backslash is copied whole
		switch b[i] {
		case 'b':
			out = append(out, `\u0008`...)
		case 'f':
			out = append(out, `\u000c`...)
		default:
			out = append(out, '\\', b[i])
		}
	}
	return out
}

func TestAppendJSONStringOutput(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"abcdefg", `"abcdefg"`},
		{"abcdefgh", `"abcdefgh"`},
		{"abcdefghi", `"abcdefghi"`},
		{`abcdefg"`, `"abcdefg\""`},
		{`abcdefgh\`, `"abcdefgh\\"`},
		{`q"b\`, `"q\"b\\"`},
		{"line\nbreak\r\ttab", `"line\nbreak\r\ttab"`},
		{"\x00\x01\b\f\x1f", `"\u0000\u0001\u0008\u000c\u001f"`},
		{"del\x7f ~", "\"del\x7f ~\""},
		{"<script>&</script>", `"<script>&</script>"`},
		{"é✓😀 Café", `"é✓😀 Café"`},
		{"abcdef😀gh", `"abcdef😀gh"`},
		{"a\u2028b\u2029", `"a\u2028b\u2029"`},
		{"abcdefg\u2028", `"abcdefg\u2028"`},
		{"bad\xffutf8", `"bad\ufffdutf8"`},
		{"\x80", `"\ufffd"`},
		{"abcdefg\xe2\x80", `"abcdefg\ufffd\ufffd"`},
		{"abcdef\xe2\x80abcdefgh", `"abcdef\ufffd\ufffdabcdefgh"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // a surrogate is not UTF-8
		{"\xc0\xaf", `"\ufffd\ufffd"`},           // nor is an overlong form
	} {
		for _, got := range [][]byte{AppendJSONString([]byte("k:"), tc.in), AppendJSONString([]byte("k:"), []byte(tc.in))} {
			if string(got) != "k:"+tc.want {
				t.Errorf("%q: got %s, want k:%s", tc.in, got, tc.want)
			}
		}
	}
}

// TestEscapeMask puts every pair of bytes at every place in a word of
// letters: the lowest bit escapeMask sets is the first byte that needs
// attention, whatever the byte after it borrows.
func TestEscapeMask(t *testing.T) {
	needs := func(c byte) bool { return c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf }
	for p := 0; p < 7; p++ {
		for b0 := 0; b0 < 256; b0++ {
			for b1 := 0; b1 < 256; b1++ {
				w := []byte("abcdefgh")
				w[p], w[p+1] = byte(b0), byte(b1)
				want := 8
				for i, c := range w {
					if needs(c) {
						want = i
						break
					}
				}
				m := escapeMask(binary.LittleEndian.Uint64(w))
				if got := bits.TrailingZeros64(m) / 8; got != want {
					t.Fatalf("%q: first byte %d, want %d (mask %#x)", w, got, want, m)
				}
			}
		}
	}
}

// appendJSONStringSeeds are the edge cases of the eight-byte fast path:
// every length around a word, a special byte at every offset, and runes,
// escapes and invalid bytes that start, end or straddle a word.
func appendJSONStringSeeds() []string {
	const ascii = "abcdefghijklmnopqrst"
	seeds := []string{"", "\x7f", `"`, `\`, "\x80", "abc\x80def", "\xff\xfe", "<>&",
		"abcdefg\xe2\x80", "abcdefghij\xf0\x9f\x98", "abcdef\xe2\x80abcdefgh", "abcdefg\xe2",
		"😀", "abcdef😀gh", "abcdefg😀", "😀😀😀😀", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80",
		"é✓😀 Café ✓\n", `{"id":"evt_1","text":"Halo \"kak\"\n"}`}
	for n := 0; n <= len(ascii); n++ {
		seeds = append(seeds, ascii[:n], ascii[:n]+`"`, ascii[:n]+"\n"+ascii[n:], ascii[:n]+"é"+ascii[n:])
	}
	for c := 0; c < 0x20; c++ {
		seeds = append(seeds, string(rune(c)), ascii[:9]+string(rune(c))+ascii[9:16])
	}
	for _, p := range []int{6, 7, 8, 9} {
		seeds = append(seeds, ascii[:p]+"\u2028"+ascii[:8], ascii[:p]+"\u2029", ascii[:p]+"\u2027"+ascii[:8])
	}
	return seeds
}

// FuzzAppendJSONString holds AppendJSONString, as string and as []byte, to
// the byte-at-a-time reference and to encoding/json.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range appendJSONStringSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := appendJSONStringRef([]byte("k:"), s)
		if std := stdlibJSONString(t, s); !bytes.Equal(want[2:], std) {
			t.Fatalf("%q: reference %s, encoding/json %s", s, want[2:], std)
		}
		if got := AppendJSONString([]byte("k:"), s); !bytes.Equal(got, want) {
			t.Fatalf("%q as string: got %s, want %s", s, got, want)
		}
		if got := AppendJSONString([]byte("k:"), []byte(s)); !bytes.Equal(got, want) {
			t.Fatalf("%q as []byte: got %s, want %s", s, got, want)
		}
	})
}

// kilobyte is fill repeated after head to 1024 bytes, cut at a rune.
func kilobyte(head, fill string) []byte {
	s := head
	for len(s) < 1024 {
		s += fill
	}
	s = s[:1024]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return []byte(s + strings.Repeat(" ", 1024-len(s)))
}

// BenchmarkAppendJSONString escapes 1 KB bodies as the archive does: a
// compact ASCII webhook, a pretty-printed one (a quote or a newline every few
// bytes) and one whose text is not ASCII; ascii_string is the first as a
// string, as headers and the CloudEvent head are. ref/ is the byte-at-a-time
// reference, for comparison in the same run.
func BenchmarkAppendJSONString(b *testing.B) {
	bodies := []struct {
		name string
		body []byte
	}{
		{"ascii", kilobyte(`{"event":"message.received","id":"evt_01HQ3ZK8V7","created_at":1705312200,"data":{"from":"+6281234567890","to":"+6289876543210","type":"text","text":"`,
			"Hello, I would like to know whether the order I placed yesterday has shipped yet, thanks a lot for the help. ")},
		{"escapes", kilobyte("{\n  \"event\": \"message.received\",\n  \"data\": {\n",
			"    \"k\": \"v\",\n    \"n\": 12,\n    \"say\": \"he said \\\"hi\\\"\",\n")},
		{"nonascii", kilobyte(`{"event":"message.received","data":{"text":"`,
			"Halo kak, café ✓ 日本語のテキストです 😀 Привет, как дела? ")},
	}
	for _, impl := range []struct {
		name string
		fn   func([]byte, []byte) []byte
	}{
		{"ref", appendJSONStringRef[[]byte]},
		{"new", AppendJSONString[[]byte]},
	} {
		for _, bd := range bodies {
			b.Run(impl.name+"/"+bd.name, func(b *testing.B) {
				dst := make([]byte, 0, 4096)
				b.SetBytes(int64(len(bd.body)))
				for b.Loop() {
					dst = impl.fn(dst[:0], bd.body)
				}
			})
		}
	}
	ascii := string(bodies[0].body)
	for _, impl := range []struct {
		name string
		fn   func([]byte, string) []byte
	}{
		{"ref", appendJSONStringRef[string]},
		{"new", AppendJSONString[string]},
	} {
		b.Run(impl.name+"/ascii_string", func(b *testing.B) {
			dst := make([]byte, 0, 4096)
			b.SetBytes(int64(len(ascii)))
			for b.Loop() {
				dst = impl.fn(dst[:0], ascii)
			}
		})
	}
}
