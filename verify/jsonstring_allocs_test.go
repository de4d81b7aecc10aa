package verify

import (
	"strings"
	"testing"
)

// TestAppendJSONStringAllocs: the eight-byte loop must not allocate
// for string input (a []byte conversion of s[i:i+8] per step would).
func TestAppendJSONStringAllocs(t *testing.T) {
	s := strings.Repeat("abcdefgh", 128) + "\"\n\u2028é"
	b := []byte(s)
	dst := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { dst = AppendJSONString(dst[:0], s) }); n != 0 {
		t.Errorf("string: %v allocs per call", n)
	}
	if n := testing.AllocsPerRun(100, func() { dst = AppendJSONString(dst[:0], b) }); n != 0 {
		t.Errorf("[]byte: %v allocs per call", n)
	}
}
