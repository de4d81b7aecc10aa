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
)

// algorithm is a hash usable for HMAC.
type algorithm struct {
	new  func() hash.Hash
	size int
}

var (
	sha256Alg = algorithm{new: sha256.New, size: sha256.Size}
	sha512Alg = algorithm{new: sha512.New, size: sha512.Size}
	sha1Alg   = algorithm{new: sha1.New, size: sha1.Size}
)

// encoding is how a MAC is written in a header.
type encoding uint8

const (
	hexMAC         encoding = iota
	base64MAC               // standard or URL alphabet, padded or not
	hexOrBase64MAC          // hex when it has the length of hex, otherwise base64
)

func (e encoding) encode(mac []byte) string {
	if e == base64MAC {
		return base64.StdEncoding.EncodeToString(mac)
	}
	return hex.EncodeToString(mac)
}

// headerSet names the headers of one signature form: the signature, and
// the signed id and timestamp where the form sends them.
type headerSet struct{ sig, id, time string }

// key is one secret, with a pool of HMAC states keyed by it.
type key struct {
	pool sync.Pool
}

type macState struct {
	h   hash.Hash
	out []byte
	buf []byte // the signed bytes before the body
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

// add decodes one MAC of size bytes written in enc.
func (c *candidates) add(s string, size int, enc encoding) error {
	if c.n == maxCandidates {
		return fmt.Errorf("%w: more than %d signatures", ErrMalformedSignature, maxCandidates)
	}
	var text [128]byte // the longest MAC, SHA-512 in hex
	if len(s) > len(text) {
		return fmt.Errorf("%w: wrong length", ErrMalformedSignature)
	}
	src := text[:copy(text[:], s)]
	if enc == hexMAC || (enc == hexOrBase64MAC && len(s) == 2*size) {
		if len(s) != 2*size {
			return fmt.Errorf("%w: wrong length", ErrMalformedSignature)
		}
		if _, err := hex.Decode(c.sig[c.n][:], src); err != nil {
			return fmt.Errorf("%w: not hex", ErrMalformedSignature)
		}
	} else {
		b64 := base64.StdEncoding
		if strings.ContainsAny(s, "-_") {
			b64 = base64.URLEncoding
		}
		if !strings.HasSuffix(s, "=") {
			b64 = b64.WithPadding(base64.NoPadding)
		}
		b64 = b64.Strict() // one spelling per MAC: unused bits must be zero
		if b64.EncodedLen(size) != len(s) {
			return fmt.Errorf("%w: wrong length", ErrMalformedSignature)
		}
		if n, err := b64.Decode(c.sig[c.n][:], src); err != nil || n != size {
			return fmt.Errorf("%w: not base64", ErrMalformedSignature)
		}
	}
	c.len[c.n] = uint8(size)
	c.n++
	return nil
}

// readMAC reads a signature header described by the provider's prefix,
// list and enc fields.
func (p *provider) readMAC(value string, c *candidates) error {
	size := p.size()
	if !p.list {
		mac, ok := strings.CutPrefix(value, p.prefix)
		if !ok && !p.prefixOptional {
			return fmt.Errorf("%w: expected prefix %q", ErrMalformedSignature, p.prefix)
		}
		return c.add(mac, size, p.enc)
	}
	entries := 0
	for entry := range strings.FieldsSeq(value) {
		if entries++; entries > maxCandidates {
			return fmt.Errorf("%w: more than %d signatures", ErrMalformedSignature, maxCandidates)
		}
		if mac, ok := strings.CutPrefix(entry, p.prefix); ok {
			if err := c.add(mac, size, p.enc); err != nil {
				return err
			}
		}
	}
	if c.n == 0 {
		return fmt.Errorf("%w: no %q signature", ErrMalformedSignature, p.prefix)
	}
	return nil
}

func (p *provider) size() int {
	if p.alg.size == 0 {
		return sha256.Size
	}
	return p.alg.size
}

// match returns the position of the first configured secret whose MAC over
// the signed bytes equals a candidate, or ErrNoMatch.
func (v *Verifier) match(r *request, body []byte) (int, error) {
	for i, k := range v.keys {
		st := k.pool.Get().(*macState)
		st.h.Reset()
		st.buf = appendSigned(st.buf[:0], r.signed, r.id, r.ts)
		st.h.Write(st.buf)
		st.h.Write(body)
		st.out = st.h.Sum(st.out[:0])
		ok := false
		for j := 0; j < r.c.n; j++ {
			if hmac.Equal(st.out, r.c.sig[j][:r.c.len[j]]) {
				ok = true
			}
		}
		k.pool.Put(st)
		if ok {
			return i, nil
		}
	}
	return 0, ErrNoMatch
}

// mac returns the MAC of the signed bytes under the first secret.
func (v *Verifier) mac(signed []part, id, ts string, body []byte) []byte {
	st := v.keys[0].pool.Get().(*macState)
	defer v.keys[0].pool.Put(st)
	st.h.Reset()
	st.buf = appendSigned(st.buf[:0], signed, id, ts)
	st.h.Write(st.buf)
	st.h.Write(body)
	return st.h.Sum(nil)
}

// singleHeader returns the one value of a header, named in canonical form.
// An absent or empty header is a missing signature; a repeated one is
// malformed, since a sender signs once.
func singleHeader(h http.Header, name string) (string, error) {
	vals := h[name]
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
// standard base64, padded or not. The prefix is optional, as in the
// reference libraries.
func decodeWhsec(secret string) ([]byte, error) {
	s := strings.TrimPrefix(secret, "whsec_")
	enc := base64.StdEncoding
	if !strings.HasSuffix(s, "=") {
		enc = base64.RawStdEncoding
	}
	raw, err := enc.DecodeString(s)
	if err != nil || len(raw) == 0 {
		return nil, errors.New(`not a whsec_ secret: expected "whsec_" followed by standard base64`)
	}
	return raw, nil
}

// part is one piece of the signed bytes before the body: a literal, or a
// reference to the signed id or timestamp.
type part struct {
	lit string
	ref string // "", "id" or "timestamp"
}

// appendSigned appends the signed bytes before the body, with id and ts in place.
func appendSigned(dst []byte, parts []part, id, ts string) []byte {
	for _, p := range parts {
		switch p.ref {
		case "id":
			dst = append(dst, id...)
		case "timestamp":
			dst = append(dst, ts...)
		default:
			dst = append(dst, p.lit...)
		}
	}
	return dst
}

// checkTemplate refuses a template in which one variable part touches the
// next ({timestamp}{id}, {id}{body}): the boundary between them could move,
// so one signature would cover two different ids or timestamps. Each
// variable part must be followed by a literal, and a timestamp (digits) by
// a literal with a character other than a digit. separated then refuses,
// per request, a value that holds the literal after it.
func checkTemplate(parts []part) error {
	for i, p := range parts {
		if p.ref == "" {
			continue
		}
		if i+1 == len(parts) || parts[i+1].ref != "" {
			return fmt.Errorf("signed: {%s} touches the part after it; separate them with a literal such as '.'", p.ref)
		}
		if p.ref == "timestamp" && strings.Trim(parts[i+1].lit, "0123456789") == "" {
			return fmt.Errorf("signed: {timestamp} is followed by %q, which can occur inside a timestamp; separate them with a literal such as '.'", parts[i+1].lit)
		}
	}
	return nil
}

// separated refuses a signed id or timestamp that holds the literal after
// it in the template, or ends with its start such that the two overlap:
// then the signed bytes could be split another way.
func separated(parts []part, id, ts string) error {
	for i, p := range parts {
		val, err := id, ErrMissingEventID
		switch p.ref {
		case "":
			continue
		case "timestamp":
			val, err = ts, ErrMalformedTimestamp
		}
		lit := parts[i+1].lit // checkTemplate: a literal follows every variable part
		if strings.Contains(val, lit) {
			return fmt.Errorf("%w: {%s} holds %q, which ends it in the signed text", err, p.ref, lit)
		}
		for k := 1; k < len(lit); k++ {
			if strings.HasSuffix(val, lit[:k]) && lit[:len(lit)-k] == lit[k:] {
				return fmt.Errorf("%w: {%s} runs into the %q after it", err, p.ref, lit)
			}
		}
	}
	return nil
}
