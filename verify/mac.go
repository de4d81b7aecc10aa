package verify

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
	"unsafe"
)

var (
	sha256Alg = algorithm{name: "sha256", new: sha256.New, size: sha256.Size}
	sha512Alg = algorithm{name: "sha512", new: sha512.New, size: sha512.Size}
	sha1Alg   = algorithm{name: "sha1", new: sha1.New, size: sha1.Size}
)

// key is one secret, with a pool of HMAC states keyed by it.
type key struct {
	pool sync.Pool
}

type macState struct {
	h   hash.Hash
	out []byte
	buf []byte // scratch for signed parts that are not in the body
}

func newKey(alg algorithm, secret []byte) *key {
	k := &key{}
	k.pool.New = func() any {
		return &macState{h: hmac.New(alg.new, secret), out: make([]byte, 0, alg.size), buf: make([]byte, 0, 64)}
	}
	return k
}

// maxCandidates bounds the signatures a request may offer (Standard
// Webhooks lists several, one per active secret).
const maxCandidates = 16

// candidates are the decoded signatures a request offers, held on the stack.
type candidates struct {
	n   int
	len [maxCandidates]uint8
	sig [maxCandidates][sha512.Size]byte
}

func (c *candidates) full() error {
	if c.n == maxCandidates {
		return fmt.Errorf("%w: more than %d signatures", ErrMalformedSignature, maxCandidates)
	}
	return nil
}

// addHex adds a signature of size bytes written in hex, either case.
func (c *candidates) addHex(s string, size int) error {
	if err := c.full(); err != nil {
		return err
	}
	if len(s) != 2*size {
		return fmt.Errorf("%w: wrong length", ErrMalformedSignature)
	}
	if _, err := hex.Decode(c.sig[c.n][:], bytesOf(s)); err != nil {
		return fmt.Errorf("%w: not hex", ErrMalformedSignature)
	}
	c.len[c.n] = uint8(size)
	c.n++
	return nil
}

// addBase64 adds a signature of size bytes written in canonical base64:
// standard or URL alphabet, padded or not.
func (c *candidates) addBase64(s string, size int) error {
	if err := c.full(); err != nil {
		return err
	}
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if !strings.HasSuffix(s, "=") {
		enc = enc.WithPadding(base64.NoPadding)
	}
	enc = enc.Strict() // one spelling per MAC: unused bits must be zero
	if enc.EncodedLen(size) != len(s) {
		return fmt.Errorf("%w: wrong length", ErrMalformedSignature)
	}
	n, err := enc.Decode(c.sig[c.n][:], bytesOf(s))
	if err != nil || n != size {
		return fmt.Errorf("%w: not base64", ErrMalformedSignature)
	}
	c.len[c.n] = uint8(size)
	c.n++
	return nil
}

// match reports whether any configured key's MAC over the prefix parts
// followed by the body equals any candidate. The prefix parts are the signed
// parts before the body, such as "<id>.<timestamp>."; there may be none.
func (v *Verifier) match(c *candidates, body []byte, prefix ...string) bool {
	for _, k := range v.keys {
		st := k.pool.Get().(*macState)
		st.h.Reset()
		st.buf = st.buf[:0]
		for _, p := range prefix {
			st.buf = append(st.buf, p...)
		}
		st.h.Write(st.buf)
		st.h.Write(body)
		st.out = st.h.Sum(st.out[:0])
		ok := false
		for i := 0; i < c.n; i++ {
			if hmac.Equal(st.out, c.sig[i][:c.len[i]]) {
				ok = true
			}
		}
		k.pool.Put(st)
		if ok {
			return true
		}
	}
	return false
}

// sign returns the MAC of prefix+body under the first secret.
func (v *Verifier) sign(prefix string, body []byte) []byte {
	st := v.keys[0].pool.Get().(*macState)
	defer v.keys[0].pool.Put(st)
	st.h.Reset()
	st.h.Write([]byte(prefix))
	st.h.Write(body)
	return st.h.Sum(nil)
}

// bytesOf views s as bytes without copying, for decoders that only read.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// singleHeader returns the one value of a header. An absent or empty header
// is a missing signature; a repeated one is malformed, since a sender signs once.
func singleHeader(h http.Header, name string) (string, error) {
	vals := h.Values(name)
	switch {
	case len(vals) == 0:
		return "", ErrMissingSignature
	case len(vals) > 1:
		return "", fmt.Errorf("%w: header %s repeated", ErrMalformedSignature, name)
	}
	v := strings.TrimSpace(vals[0])
	if v == "" {
		return "", ErrMissingSignature
	}
	return v, nil
}

// decodeWhsec decodes a Standard Webhooks secret: "whsec_" followed by
// base64. The prefix is optional, as in the reference libraries.
func decodeWhsec(secret string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(raw) == 0 {
		return nil, errors.New(`not a whsec_ secret: expected "whsec_" followed by standard base64`)
	}
	return raw, nil
}
