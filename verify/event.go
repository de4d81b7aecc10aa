package verify

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"strconv"
	"time"
	"unicode/utf8"
)

// Field is one of the canonical fields of a normalised event's data.
type Field uint8

// The canonical fields, in the order they appear in a normalised event.
const (
	FieldMessageID Field = iota + 1
	FieldConversationID
	FieldContactID
	FieldSessionID
	FieldAccountID
	FieldChannel
	FieldDirection
	FieldFrom
	FieldTo
	FieldStatus
	FieldText
	FieldErrorCode
	FieldErrorMessage
	FieldTemplateID
	FieldTemplateName
	FieldReason
	lastField = FieldReason
)

var fieldNames = [...]string{
	FieldMessageID:      "message_id",
	FieldConversationID: "conversation_id",
	FieldContactID:      "contact_id",
	FieldSessionID:      "session_id",
	FieldAccountID:      "account_id",
	FieldChannel:        "channel",
	FieldDirection:      "direction",
	FieldFrom:           "from",
	FieldTo:             "to",
	FieldStatus:         "status",
	FieldText:           "text",
	FieldErrorCode:      "error_code",
	FieldErrorMessage:   "error_message",
	FieldTemplateID:     "template_id",
	FieldTemplateName:   "template_name",
	FieldReason:         "reason",
}

// String returns the field's snake_case name in a normalised event.
func (f Field) String() string {
	if f >= FieldMessageID && f <= lastField {
		return fieldNames[f]
	}
	return "field(" + strconv.Itoa(int(f)) + ")"
}

// canonicalTypes are the event types of a normalised event. A provider's
// type map sends its own names onto them; other names are kept as the
// provider writes them.
var canonicalTypes = []string{
	"message.received", "message.queued", "message.sent", "message.delivered",
	"message.read", "message.failed", "contact.created", "contact.updated",
	"conversation.updated", "campaign.completed", "template.approved",
	"template.rejected", "template.updated", "media.uploaded",
	"session.connected", "session.disconnected", "automation.triggered",
}

// typeMap returns a provider's type map: each canonical type to itself,
// and the provider's own names to the canonical types they mean.
func typeMap(renames map[string]string) map[string]string {
	m := make(map[string]string, len(canonicalTypes)+len(renames))
	for _, t := range canonicalTypes {
		m[t] = t
	}
	for from, to := range renames {
		m[from] = to
	}
	return m
}

// canonical is the type map of a provider whose names are already canonical.
var canonical = typeMap(nil)

// Event is a verified, normalised webhook event.
type Event struct {
	// Provider is the provider's name, the event's CloudEvents source.
	Provider string
	// ID is the stable event id: the provider's own where it sends one,
	// otherwise derived from what does not change across retries (see the
	// provider's file). Retries of one event carry the same ID.
	ID string
	// Type is the canonical type, or the provider's own name for events
	// outside the canonical list.
	Type string
	// ProviderType is the provider's own name for the event.
	ProviderType string
	// Time is when the event happened, as the provider says; zero if unknown.
	Time time.Time
	// Window is the timestamp window the request was held to (the larger
	// one where two applied), plus the future skew; zero if none applied.
	Window time.Duration
	// Body is the raw request body, not copied.
	Body []byte
	// Secret is the position in Options.Secrets of the secret that
	// verified the request, from 0.
	Secret int

	fields        [lastField + 1][]byte // canonical fields' JSON tokens, referring into Body
	id, typ, time []byte                // the body's event id, type and time tokens
}

// Field returns a canonical field's value as text, and whether the provider
// gave it (as a string or a number).
func (e *Event) Field(f Field) (string, bool) {
	if f < FieldMessageID || f > lastField {
		return "", false
	}
	return tokenString(e.fields[f])
}

// usableID reports whether id can serve as an event id: present, bounded
// and free of control characters, so it is safe in a header, a log line and
// a store key.
func usableID(id string) bool {
	if id == "" || len(id) > MaxEventIDLen || !utf8.ValidString(id) {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// bodyID derives an event id from the raw body, for providers that send
// none: the first 128 bits of its SHA-256, in hex. Providers repeat the body
// unchanged on retries, so retries share the id, while any two events that
// differ in any byte get different ids: a derived id never merges two events.
func bodyID(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:16])
}

// CloudEventContentType is the media type of AppendCloudEvent's output.
const CloudEventContentType = "application/cloudevents+json"

// AppendCloudEvent appends the event as a CloudEvents 1.0 structured-mode
// JSON object to dst:
//
//	{"specversion":"1.0","id":...,"source":<provider>,"type":<canonical type>,
//	 "time":<event time, RFC 3339>,"datacontenttype":"application/json",
//	 "providerevent":<provider's event name>,
//	 "data":{<canonical fields the provider gave>...,"payload":<raw body>}}
//
// "time" is left out when the event has none. The payload is the body's
// JSON value byte for byte: only whitespace around it (a trailing newline,
// say) is left out.
//
// It is AppendCloudEventHead, then Payload, then CloudEventTail; a caller
// that streams the event can send those three without copying the body.
func (e *Event) AppendCloudEvent(dst []byte) []byte {
	dst = e.AppendCloudEventHead(dst)
	dst = append(dst, e.Payload()...)
	return append(dst, CloudEventTail...)
}

// CloudEventTail closes a CloudEvent after its payload.
const CloudEventTail = "}}"

// Payload returns the body's JSON value: the body without surrounding
// whitespace. It is not a copy.
func (e *Event) Payload() []byte {
	b := e.Body
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// AppendCloudEventHead appends the CloudEvent up to its payload.
func (e *Event) AppendCloudEventHead(dst []byte) []byte {
	dst = append(dst, `{"specversion":"1.0","id":`...)
	dst = AppendJSONString(dst, e.ID)
	dst = append(dst, `,"source":`...)
	dst = AppendJSONString(dst, e.Provider)
	dst = append(dst, `,"type":`...)
	dst = AppendJSONString(dst, e.Type)
	if !e.Time.IsZero() {
		dst = append(dst, `,"time":"`...)
		dst = e.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"datacontenttype":"application/json","providerevent":`...)
	dst = AppendJSONString(dst, e.ProviderType)
	dst = append(dst, `,"data":{`...)
	for f := FieldMessageID; f <= lastField; f++ {
		tok := e.fields[f]
		if len(tok) == 0 {
			continue
		}
		switch c := tok[0]; {
		case c == '"':
			dst = append(dst, '"')
			dst = append(dst, fieldNames[f]...)
			dst = append(dst, `":`...)
			dst = append(dst, tok...) // a validated JSON string, copied as is
		case c == '-' || (c >= '0' && c <= '9'):
			dst = append(dst, '"')
			dst = append(dst, fieldNames[f]...)
			dst = append(dst, `":"`...)
			dst = append(dst, tok...) // numbers become strings: one type per field
			dst = append(dst, '"')
		default:
			continue // null, booleans, objects and arrays stay in the payload only
		}
		dst = append(dst, ',')
	}
	return append(dst, `"payload":`...)
}

// AppendJSONString appends s as a JSON string, as encoding/json writes it
// except that <, > and & stay as they are: invalid UTF-8 becomes U+FFFD,
// and U+2028 and U+2029 are escaped (JavaScript reads them as line ends).
func AppendJSONString[T string | []byte](dst []byte, s T) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight bytes at a time up to the next byte that needs attention;
		// the bytes passed over are copied with the run they are in.
		for i+8 <= len(s) {
			if m := escapeMask(binary.LittleEndian.Uint64([]byte(s[i : i+8]))); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i == len(s) {
			break
		}
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
		// Runes of more than one byte are decoded one after another, so
		// text that is not ASCII does not test eight bytes for each rune.
		for i < len(s) && s[i] >= utf8.RuneSelf {
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
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// escapeMask returns x, eight bytes with the first in the low byte, reduced
// to the top bit of each byte that AppendJSONString does not copy as it is:
// a control byte, '"', '\\', or a byte >= 0x80 (part of a multi-byte rune,
// or invalid). Subtracting lets a byte that matches borrow from the byte
// after it, so bits after the lowest may be set in error; the lowest set bit
// is always the first such byte, and bits.TrailingZeros64(m)/8 its index.
func escapeMask(x uint64) uint64 {
	const ones, tops = 0x0101010101010101, 0x8080808080808080
	below := x - ones*0x20              // top bit set if < 0x20 (or >= 0xa0)
	quote := (x ^ ones*'"') - ones      // top bit set if '"' (or >= 0x80)
	backslash := (x ^ ones*'\\') - ones // top bit set if '\\' (or >= 0x80)
	return (x | below | quote | backslash) & tops
}
