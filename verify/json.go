package verify

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// This file holds a strict JSON scanner (RFC 8259, UTF-8 only) that makes
// one pass over the body, copies nothing and allocates nothing on the common
// path. While it validates, it records the raw tokens of the members that a
// provider's layout names: members of the top-level object, and members of the
// top-level objects the layout calls containers ("data", "payload"). It
// refuses a body in which one of those objects holds a name it reads twice
// (see layout).
//
// encoding/json is not used on the body because it needs a validation pass
// plus a decoding pass, allocates per field, and re-encodes raw messages when
// marshalling, while the normalised event must carry the provider's bytes
// unchanged. The scanner is fuzzed against encoding/json (FuzzScan).

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 10000

var (
	errEmptyBody   = fmt.Errorf("%w: empty", ErrMalformedBody)
	errNotObject   = fmt.Errorf("%w: not a JSON object", ErrMalformedBody)
	errTooDeep     = fmt.Errorf("%w: nested too deeply", ErrMalformedBody)
	errInvalidUTF8 = fmt.Errorf("%w: not UTF-8", ErrMalformedBody)
	errUnexpectEOF = fmt.Errorf("%w: unexpected end of JSON", ErrMalformedBody)
)

type scanner struct {
	b   []byte
	i   int
	lay *layout
	ev  *Event
}

// scanBody validates that body is exactly one JSON object and captures the
// members named by lay into ev. Where two names lead to one place (an id as
// "id" or "event_id"), the first in the body wins; one name twice is an
// error (see layout).
func scanBody(body []byte, lay *layout, ev *Event) error {
	s := scanner{b: body, lay: lay, ev: ev}
	s.ws()
	if s.i == len(s.b) {
		return errEmptyBody
	}
	if s.b[s.i] != '{' {
		return errNotObject
	}
	if err := s.object(1, lay.top); err != nil {
		return err
	}
	s.ws()
	if s.i != len(s.b) {
		return s.syntax("data after the top-level object")
	}
	return nil
}

func (s *scanner) syntax(what string) error {
	if s.i >= len(s.b) {
		return errUnexpectEOF
	}
	return fmt.Errorf("%w: %s at offset %d", ErrMalformedBody, what, s.i)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value(depth int) error {
	if s.i >= len(s.b) {
		return errUnexpectEOF
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.str()
	case c == '{':
		return s.object(depth, nil)
	case c == '[':
		return s.array(depth)
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.syntax("invalid character")
	}
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.syntax("invalid literal")
	}
	s.i += len(lit)
	return nil
}

func (s *scanner) number() error {
	b := s.b
	if b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(b) && b[s.i] == '0':
		s.i++
	case s.i < len(b) && b[s.i] >= '1' && b[s.i] <= '9':
		s.digits()
	default:
		return s.syntax("invalid number")
	}
	if s.i < len(b) && b[s.i] == '.' {
		s.i++
		if !s.digits() {
			return s.syntax("invalid number")
		}
	}
	if s.i < len(b) && (b[s.i] == 'e' || b[s.i] == 'E') {
		s.i++
		if s.i < len(b) && (b[s.i] == '+' || b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return s.syntax("invalid number")
		}
	}
	return nil
}

func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// SWAR constants: a word has a byte below 0x20 or above 0x7f when
// ((w - 0x20 in every byte) | w) & highs is non-zero (a borrow may flag a
// later byte too, which only sends it to the byte-at-a-time path).
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// str scans a string starting at its opening quote. The closing quote and
// any backslash are found with bytes.IndexByte (vectorised in the standard
// library); the text between them is checked for control characters and
// UTF-8 eight bytes at a time.
func (s *scanner) str() error {
	b := s.b
	i := s.i + 1
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			s.i = len(b)
			return errUnexpectEOF
		}
		span := b[i : i+q]
		if e := bytes.IndexByte(span, '\\'); e >= 0 {
			if err := s.plain(i, span[:e]); err != nil {
				return err
			}
			n, ok := escapeLen(b[i+e:])
			if !ok {
				s.i = i + e
				return s.syntax("invalid escape")
			}
			i += e + n
			continue
		}
		if err := s.plain(i, span); err != nil {
			return err
		}
		s.i = i + q + 1
		return nil
	}
}

// plain checks text with no quote or backslash, starting at offset off:
// no control characters, valid UTF-8.
func (s *scanner) plain(off int, p []byte) error {
	j := 0
	for {
		for j+8 <= len(p) && ((binary.LittleEndian.Uint64(p[j:])-ones*0x20)|binary.LittleEndian.Uint64(p[j:]))&highs == 0 {
			j += 8
		}
		if j >= len(p) {
			return nil
		}
		switch c := p[j]; {
		case c < 0x20:
			s.i = off + j
			return s.syntax("control character in string")
		case c < utf8.RuneSelf:
			j++
		default:
			r, n := utf8.DecodeRune(p[j:])
			if r == utf8.RuneError && n == 1 {
				return errInvalidUTF8
			}
			j += n
		}
	}
}

func escapeLen(b []byte) (int, bool) {
	if len(b) < 2 {
		return 0, false
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, true
	case 'u':
		if len(b) < 6 {
			return 0, false
		}
		for _, c := range b[2:6] {
			if !isHex(c) {
				return 0, false
			}
		}
		return 6, true
	}
	return 0, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (s *scanner) array(depth int) error {
	if depth > maxDepth {
		return errTooDeep
	}
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errUnexpectEOF
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.syntax("expected ',' or ']'")
		}
	}
}

// object scans an object starting at its opening brace, capturing the
// members that m names (none when m is nil).
func (s *scanner) object(depth int, m members) error {
	if depth > maxDepth {
		return errTooDeep
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	var seen uint64 // the names of m met so far
	for {
		s.ws()
		if s.i >= len(s.b) {
			return errUnexpectEOF
		}
		if s.b[s.i] != '"' {
			return s.syntax("expected a member name")
		}
		ks := s.i
		if err := s.str(); err != nil {
			return err
		}
		key := s.b[ks+1 : s.i-1]
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.syntax("expected ':'")
		}
		s.i++
		s.ws()
		var mem member
		found := false
		if m != nil {
			if mem, found = m.lookup(key); found {
				if seen&(1<<mem.bit) != 0 {
					return fmt.Errorf("%w: member %q twice", ErrMalformedBody, mem.name)
				}
				seen |= 1 << mem.bit
			}
		}
		vs := s.i
		var err error
		if found && mem.exact && mem.role == containerMember && s.i < len(s.b) && s.b[s.i] == '{' {
			err = s.object(depth+1, s.lay.inside(mem.name))
		} else {
			err = s.value(depth + 1)
		}
		if err != nil {
			return err
		}
		if found && mem.exact {
			s.capture(mem, s.b[vs:s.i])
		}
		s.ws()
		if s.i >= len(s.b) {
			return errUnexpectEOF
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.syntax("expected ',' or '}'")
		}
	}
}

// capture records a member's raw value; the first value wins.
func (s *scanner) capture(mem member, val []byte) {
	var dst *[]byte
	switch mem.role {
	case fieldMember:
		dst = &s.ev.fields[mem.field]
	case idMember:
		dst = &s.ev.id
	case typeMember:
		dst = &s.ev.typ
	case timeMember:
		dst = &s.ev.time
	default:
		return
	}
	if *dst == nil {
		*dst = val
	}
}

// keyString returns a member name for a map lookup. Names without escapes are
// converted at the call site without allocating; escaped ones are decoded.
func keyString(key []byte) string {
	for _, c := range key {
		if c == '\\' {
			return unquote(key)
		}
	}
	return string(key)
}

// unquote decodes the inside of a JSON string already validated by str.
func unquote(inner []byte) string {
	q := make([]byte, 0, len(inner)+2)
	q = append(append(append(q, '"'), inner...), '"')
	var s string
	if json.Unmarshal(q, &s) != nil {
		return ""
	}
	return s
}

// tokenString returns the text of a captured scalar token: a string's
// decoded value, or a number as written. Other kinds (null, booleans,
// objects, arrays) yield ok == false.
func tokenString(tok []byte) (string, bool) {
	if len(tok) == 0 {
		return "", false
	}
	switch c := tok[0]; {
	case c == '"':
		if len(tok) < 2 || tok[len(tok)-1] != '"' {
			return "", false // not a token from the scanner
		}
		return keyString(tok[1 : len(tok)-1]), true
	case c == '-' || (c >= '0' && c <= '9'):
		return string(tok), true
	}
	return "", false
}

// scanType returns the raw type token of a body under a layout; nil when
// the body is malformed or has none.
func scanType(body []byte, lay *layout) []byte {
	var ev Event
	if scanBody(body, lay, &ev) != nil {
		return nil
	}
	return ev.typ
}
