package verify

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Custom describes, from configuration alone, a provider that is not built
// in and signs with an HMAC. It compiles into the same provider struct as
// the built-in providers. Fields that name a JSON member take a path of one
// or two names: "id", or "data.id". The canonical data fields (dataKeys)
// are read at the top level and in "data".
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
	// template take their values from IDHeader and TimestampHeader. Each of
	// them must be followed by a literal (after {timestamp}, one with a
	// character other than a digit), and a request whose id or timestamp
	// holds that literal is refused: otherwise the boundary could move and
	// one signature would cover another id or timestamp.
	Signed string `json:"signed,omitempty"`
	// TimestampHeader or TimestampField is where the timestamp is: a header
	// name, or a JSON member. Either, not both; neither means the scheme
	// has no timestamp, and replays are held off by the dedupe store alone.
	// A timestamp header must be signed ({timestamp} in Signed), or anyone
	// could refresh it. Values are Unix seconds or milliseconds, or RFC 3339;
	// Sign writes Unix seconds.
	TimestampHeader string `json:"timestamp_header,omitempty"`
	TimestampField  string `json:"timestamp_field,omitempty"`
	// TimestampKind is "event" (default): event time, repeated unchanged on
	// retries and held to MaxAge (default DefaultMaxAge, 36 hours); or
	// "attempt": set per delivery attempt and held to Tolerance.
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
	p, err := c.compile()
	if err != nil {
		return nil, err
	}
	return newVerifier(c.Name, p, opts)
}

// compile turns a Custom configuration into a provider.
func (c Custom) compile() (*provider, error) {
	if err := checkName(c.Name); err != nil {
		return nil, fmt.Errorf("custom provider name %w", err)
	}
	if c.SignatureHeader == "" {
		return nil, errors.New("signature_header is required")
	}
	headers := map[string]bool{}
	for _, h := range []string{c.SignatureHeader, c.IDHeader, c.TimestampHeader, c.TypeHeader} {
		switch {
		case h == "":
		case !validHeaderName(h):
			return nil, fmt.Errorf("header name %q: use letters, digits and '-'", h)
		case headers[canonicalHeader(h)]:
			return nil, fmt.Errorf("header %s named twice: the signature, id, timestamp and type headers must differ", h)
		}
		headers[canonicalHeader(h)] = h != ""
	}
	p := &provider{
		name:       c.Name,
		prefix:     c.SignaturePrefix,
		parseTime:  parseTimeText,
		deriveID:   c.IDHeader == "" && c.IDField == "",
		types:      canonical,
		typeHeader: canonicalHeader(c.TypeHeader),
	}
	switch c.Algorithm {
	case "", "sha256":
		p.alg = sha256Alg
	case "sha512":
		p.alg = sha512Alg
	case "sha1":
		p.alg = sha1Alg
	default:
		return nil, fmt.Errorf("algorithm %q: use sha256, sha512 or sha1", c.Algorithm)
	}
	switch c.Encoding {
	case "", "hex":
		p.enc = hexMAC
	case "base64":
		p.enc = base64MAC
	default:
		return nil, fmt.Errorf("encoding %q: use hex or base64", c.Encoding)
	}
	if c.TimestampHeader != "" && c.TimestampField != "" {
		return nil, errors.New("set timestamp_header or timestamp_field, not both")
	}
	if c.IDHeader != "" && c.IDField != "" {
		return nil, errors.New("set id_header or id_field, not both")
	}
	k := eventTime
	switch c.TimestampKind {
	case "", TimestampEvent:
	case TimestampAttempt:
		k = attemptTime
	default:
		return nil, fmt.Errorf("timestamp_kind %q: use event or attempt", c.TimestampKind)
	}
	switch {
	case c.TimestampHeader != "":
		p.headerTime = k
	case c.TimestampField != "":
		p.bodyTime = k
	}
	var err error
	if p.signed, err = parseTemplate(c.Signed); err != nil {
		return nil, err
	}
	signs := map[string]bool{}
	for _, part := range p.signed {
		signs[part.ref] = true
	}
	switch {
	case signs["id"] != (c.IDHeader != ""):
		return nil, errors.New("id_header and {id} in signed go together: an unsigned id header would let a replay past the dedupe store")
	case signs["timestamp"] != (c.TimestampHeader != ""):
		return nil, errors.New("timestamp_header and {timestamp} in signed go together: an unsigned timestamp could be refreshed by anyone")
	}
	// the data fields in "data"; each path's name only in its own parent
	top := with(dataKeys, map[string]member{"data": asContainer})
	nested := map[string]map[string]member{"data": with(dataKeys)}
	for _, f := range []struct {
		path string
		as   member
	}{{c.TimestampField, asTime}, {c.IDField, asID}, {c.TypeField, asType}} {
		if f.path == "" {
			continue
		}
		parent, name, isNested := strings.Cut(f.path, ".")
		switch {
		case parent == "" || (isNested && (name == "" || strings.Contains(name, "."))):
			return nil, fmt.Errorf("field path %q: use \"name\" or \"parent.name\"", f.path)
		case isNested:
			top[parent] = asContainer
			if nested[parent] == nil {
				nested[parent] = map[string]member{}
			}
			nested[parent][name] = f.as
		default:
			top[parent] = f.as
		}
	}
	if p.layout, err = newLayout(top, nested["data"]); err != nil {
		return nil, fmt.Errorf("field paths: %w", err)
	}
	p.layout.containers = map[string]members{}
	for parent, names := range nested {
		if p.layout.containers[parent], err = newMembers(names); err != nil {
			return nil, fmt.Errorf("field paths: %w", err)
		}
	}
	p.forms = []Form{{
		Name:        "custom",
		Description: c.SignatureHeader + ": " + c.SignaturePrefix + "<" + cmpStr(c.Encoding, "hex") + " HMAC of " + cmpStr(c.Signed, "{body}") + ">",
		headers:     headerSet{canonicalHeader(c.SignatureHeader), canonicalHeader(c.IDHeader), canonicalHeader(c.TimestampHeader)},
		prefix:      c.SignaturePrefix,
		enc:         p.enc,
	}}
	return p, nil
}

func cmpStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// validHeaderName reports whether name is a plain header name: letters,
// digits, '-' and '_'.
func validHeaderName(name string) bool {
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return name != "" && len(name) <= 128
}

func canonicalHeader(name string) string {
	if name == "" {
		return ""
	}
	return http.CanonicalHeaderKey(name)
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
	if err := checkTemplate(parts); err != nil {
		return nil, fmt.Errorf("%w (in %q)", err, t)
	}
	return parts, nil
}
