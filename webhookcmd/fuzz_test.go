package webhookcmd

import (
	"bytes"
	"testing"
)

// FuzzParseCaptured: a capture file is untrusted input: never a panic, and
// the body parsed is the bytes after the blank line (or their dechunking).
func FuzzParseCaptured(f *testing.F) {
	for _, s := range []string{
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}",
		"POST /x HTTP/1.1\nHost: a\nX-Wazera-Signature: ab\n\n{\"a\":1}\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n", "\r\n\r\n", "\n\n", "", "POST\n\n", "POST / HTTP/9.9\n\nx",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := parseCaptured(raw)
		if err != nil {
			return
		}
		if c.header == nil {
			t.Fatal("nil header")
		}
		if !c.chunked && len(c.body) > 0 && !bytes.HasSuffix(raw, c.body) {
			t.Fatalf("body %q is not the end of the capture", c.body)
		}
	})
}
