package verify

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Custom describes, from configuration alone, a provider that is not built
// in and signs with an HMAC. Fields that name a JSON member take a path of
// one or two names: "id", or "data.id".
type Custom struct {
	// Name is the provider's name: the CloudEvents source and the dedupe
	// namespace. Required; lower-case letters, digits, '-' and '_'.
	Name string `json:"name,omitempty"`
	// SignatureHeader is the header that carries the signature. Required.
	SignatureHeader string `json:"signature_header,omitempty"`
	// SignaturePrefix is text before the signature in the header, such as
	// "sha256=". When set, it is required.
	SignaturePrefix string `json:"signature_prefix,omitempty"`
	// Algorithm is the HMAC hash: "sha256" (default), "sha512", or "sha1"
	// (for legacy senders only).
	Algorithm string `json:"algorithm,omitempty"`
	// Encoding is how the signature is written: "hex" (default) or "base64".
	Encoding string `json:"encoding,omitempty"`
	// Signed is what the MAC covers: a template of {id}, {timestamp} and
	// literal text, ending in {body}, for example "{timestamp}.{body}" or
	// "v0:{timestamp}:{body}". Default "{body}". {id} and {timestamp} in the
	// template take their values from IDHeader and TimestampHeader.
	Signed string `json:"signed,omitempty"`
	// TimestampHeader or TimestampField is where the timestamp is: a header
	// name, or a JSON member. Either, not both; neither means the scheme
	// has no timestamp, and replays are held off by the dedupe store alone.
	// A timestamp header must be signed ({timestamp} in Signed), or anyone
	// could refresh it. Values are Unix seconds or milliseconds, or RFC 3339.
	TimestampHeader string `json:"timestamp_header,omitempty"`
	TimestampField  string `json:"timestamp_field,omitempty"`
	// TimestampKind is "event" (default): event time, repeated unchanged on
	// retries and held to MaxAge; or "attempt": set per delivery attempt and
	// held to Tolerance.
	TimestampKind string `json:"timestamp_kind,omitempty"`
	// IDHeader or IDField is where the event id is. Neither means the id is
	// derived from the raw body (first 128 bits of its SHA-256, hex). An id
	// header must be signed ({id} in Signed), or a replay could carry a
	// fresh id past the dedupe store; for senders that do not sign their
	// delivery id, leave both unset and the id is derived from the body.
	IDHeader string `json:"id_header,omitempty"`
	IDField  string `json:"id_field,omitempty"`
	// TypeField is the JSON member with the event type; TypeHeader a header
	// with it. Headers are not signed: use TypeHeader only for senders that
	// put the type nowhere else. Neither means the type is "unknown".
	TypeField  string `json:"type_field,omitempty"`
	TypeHeader string `json:"type_header,omitempty"`
}

// Timestamp kinds of a Custom scheme.
const (
	TimestampEvent   = "event"
	TimestampAttempt = "attempt"
)

// NewCustom returns a Verifier for a custom provider.
func NewCustom(c Custom, opts Options) (*Verifier, error) {
	s, alg, err := c.compile()
	if err != nil {
		return nil, err
	}
	return newVerifier(c.Name, s, alg, nil, opts)
}

// template part: a literal, or a reference to the id or the timestamp.
type part struct {
	lit string
	ref string // "", "id" or "timestamp"
}

type custom struct {
	c       Custom
	size    int
	prefix  []part
	attempt bool
	lay     *layout
}

func (c Custom) compile() (*custom, algorithm, error) {
	s := &custom{c: c}
	if !validName(c.Name) {
		return nil, algorithm{}, fmt.Errorf("custom provider name %q: use lower-case letters, digits, '-' and '_'", c.Name)
	}
	if _, builtin := providers[c.Name]; builtin {
		return nil, algorithm{}, fmt.Errorf("custom provider name %q is a built-in provider", c.Name)
	}
	if c.SignatureHeader == "" {
		return nil, algorithm{}, errors.New("signature_header is required")
	}
	var alg algorithm
	switch c.Algorithm {
	case "", "sha256":
		alg = sha256Alg
	case "sha512":
		alg = sha512Alg
	case "sha1":
		alg = sha1Alg
	default:
		return nil, algorithm{}, fmt.Errorf("algorithm %q: use sha256, sha512 or sha1", c.Algorithm)
	}
	s.size = alg.size
	switch c.Encoding {
	case "", "hex", "base64":
	default:
		return nil, algorithm{}, fmt.Errorf("encoding %q: use hex or base64", c.Encoding)
	}
	if c.TimestampHeader != "" && c.TimestampField != "" {
		return nil, algorithm{}, errors.New("set timestamp_header or timestamp_field, not both")
	}
	if c.IDHeader != "" && c.IDField != "" {
		return nil, algorithm{}, errors.New("set id_header or id_field, not both")
	}
	switch c.TimestampKind {
	case "", TimestampEvent:
	case TimestampAttempt:
		s.attempt = true
	default:
		return nil, algorithm{}, fmt.Errorf("timestamp_kind %q: use event or attempt", c.TimestampKind)
	}
	var err error
	if s.prefix, err = parseTemplate(c.Signed); err != nil {
		return nil, algorithm{}, err
	}
	signs := map[string]bool{}
	for _, p := range s.prefix {
		signs[p.ref] = true
	}
	switch {
	case signs["id"] != (c.IDHeader != ""):
		return nil, algorithm{}, errors.New("id_header and {id} in signed go together: an unsigned id header would let a replay past the dedupe store")
	case signs["timestamp"] != (c.TimestampHeader != ""):
		return nil, algorithm{}, errors.New("timestamp_header and {timestamp} in signed go together: an unsigned timestamp could be refreshed by anyone")
	}
	s.lay = &layout{top: with(dataKeys, nil), containers: set("data"), nested: with(dataKeys, nil)}
	for _, f := range []struct {
		path string
		slot Field
	}{{c.TimestampField, slotTime}, {c.IDField, slotID}, {c.TypeField, slotType}} {
		if f.path == "" {
			continue
		}
		parent, name, nested := strings.Cut(f.path, ".")
		switch {
		case parent == "" || (nested && (name == "" || strings.Contains(name, "."))):
			return nil, algorithm{}, fmt.Errorf("field path %q: use \"name\" or \"parent.name\"", f.path)
		case nested:
			s.lay.containers[parent] = true
			s.lay.nested[name] = f.slot
		default:
			s.lay.top[parent] = f.slot
		}
	}
	return s, alg, nil
}

func validName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// parseTemplate splits a signed-content template into the parts before
// {body}, which must end it.
func parseTemplate(t string) ([]part, error) {
	if t == "" {
		t = "{body}"
	}
	head, ok := strings.CutSuffix(t, "{body}")
	if !ok || strings.Contains(head, "{body}") {
		return nil, fmt.Errorf("signed %q: must end with {body} and hold it once", t)
	}
	var parts []part
	for head != "" {
		i := strings.IndexByte(head, '{')
		if i < 0 {
			parts = append(parts, part{lit: head})
			break
		}
		if i > 0 {
			parts = append(parts, part{lit: head[:i]})
		}
		j := strings.IndexByte(head[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("signed %q: unclosed {", t)
		}
		switch ref := head[i+1 : i+j]; ref {
		case "id", "timestamp":
			parts = append(parts, part{ref: ref})
		default:
			return nil, fmt.Errorf("signed %q: unknown placeholder {%s}; use {id}, {timestamp}, {body}", t, ref)
		}
		head = head[i+j+1:]
	}
	return parts, nil
}

func (s *custom) signatureHeaders() []string { return []string{s.c.SignatureHeader} }

func (s *custom) windows() (attempt, event bool) {
	has := s.c.TimestampHeader != "" || s.c.TimestampField != ""
	return has && s.attempt, has && !s.attempt
}

func (s *custom) verify(v *Verifier, h http.Header, body []byte, ev *Event) error {
	sig, err := singleHeader(h, s.c.SignatureHeader)
	if err != nil {
		return err
	}
	if s.c.SignaturePrefix != "" {
		var ok bool
		if sig, ok = strings.CutPrefix(sig, s.c.SignaturePrefix); !ok {
			return fmt.Errorf("%w: expected prefix %q", ErrMalformedSignature, s.c.SignaturePrefix)
		}
	}
	var c candidates
	if s.c.Encoding == "base64" {
		err = c.addBase64(sig, s.size)
	} else {
		err = c.addHex(sig, s.size)
	}
	if err != nil {
		return err
	}
	var id, ts string
	if s.c.IDHeader != "" {
		if id, err = otherHeader(h, s.c.IDHeader, ErrMissingEventID); err != nil {
			return err
		}
		if !usableID(id) {
			return ErrMissingEventID
		}
		ev.ID = id
	}
	if s.c.TimestampHeader != "" {
		if ts, err = otherHeader(h, s.c.TimestampHeader, ErrMissingTimestamp); err != nil {
			return err
		}
		t, err := parseTimeText(ts)
		if err != nil {
			return err
		}
		if err := s.checkTime(v, t, ev); err != nil {
			return err
		}
	}
	var pbuf [8]string
	prefix := pbuf[:0]
	for _, p := range s.prefix {
		switch p.ref {
		case "id":
			prefix = append(prefix, id)
		case "timestamp":
			prefix = append(prefix, ts)
		default:
			prefix = append(prefix, p.lit)
		}
	}
	if !v.match(&c, body, prefix...) {
		return ErrNoMatch
	}
	if err := scanBody(body, s.lay, &ev.raw); err != nil {
		return err
	}
	if s.c.TimestampField != "" {
		t, err := parseTimeToken(ev.raw[slotTime])
		if err != nil {
			return bodyErr(err, s.c.TimestampField)
		}
		if err := s.checkTime(v, t, ev); err != nil {
			return err
		}
	}
	switch {
	case s.c.IDField != "":
		if err := ev.setID(false); err != nil {
			return err
		}
	case s.c.IDHeader == "":
		ev.setID(true)
	}
	t := ev.typeToken()
	if s.c.TypeHeader != "" {
		if ht := h.Get(s.c.TypeHeader); ht != "" && ev.raw[slotType] == nil {
			t = ht
		}
	}
	ev.setType(t, nil)
	return nil
}

func (s *custom) checkTime(v *Verifier, t time.Time, ev *Event) error {
	if s.attempt {
		ev.Time = t
		return v.attemptTime(t, ev)
	}
	return v.holdEventTime(t, ev)
}

// otherHeader reads a single-valued header other than the signature.
func otherHeader(h http.Header, name string, missing error) (string, error) {
	val, err := singleHeader(h, name)
	if err == ErrMissingSignature {
		return "", missing
	}
	return val, err
}

func (s *custom) forms() []Form {
	desc := s.c.SignatureHeader + ": " + s.c.SignaturePrefix + "<" + s.c.Encoding + " HMAC of " + s.c.Signed + ">"
	return oneForm("custom", desc)
}

func (s *custom) sign(v *Verifier, body []byte, _, id string, t time.Time) http.Header {
	h := http.Header{}
	ts := strconv.FormatInt(t.Unix(), 10)
	var prefix strings.Builder
	for _, p := range s.prefix {
		switch p.ref {
		case "id":
			prefix.WriteString(id)
		case "timestamp":
			prefix.WriteString(ts)
		default:
			prefix.WriteString(p.lit)
		}
	}
	mac := v.sign(prefix.String(), body)
	enc := hex.EncodeToString(mac)
	if s.c.Encoding == "base64" {
		enc = base64.StdEncoding.EncodeToString(mac)
	}
	h.Set(s.c.SignatureHeader, s.c.SignaturePrefix+enc)
	if s.c.IDHeader != "" {
		h.Set(s.c.IDHeader, id)
	}
	if s.c.TimestampHeader != "" {
		h.Set(s.c.TimestampHeader, ts)
	}
	return h
}
