package verify

import (
	"bytes"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// A layout says which members of a body the gateway reads: members of the
// top-level object, and members of the objects the top level holds under a
// container name ("data", "payload").
//
// Duplicate names. Parsers disagree on an object with one name twice: this
// scanner would read the first, encoding/json and JavaScript keep the last,
// and encoding/json matches struct fields without regard to case. So where
// the gateway reads a name (at the top level, or in a container, including
// the container's own name), that name may occur once per object, compared
// as encoding/json compares names (case folded); a body with it twice is
// malformed. Members the gateway does not read, and deeper objects, are the
// application's business and pass untouched.
type layout struct {
	top, nested members
	// containers holds the names read in a container that reads other
	// names than nested (a custom provider's "event" in "event.id"): an
	// id path in one container never reads another's id.
	containers map[string]members
}

// inside returns the names read in the container of that name.
func (l *layout) inside(container string) members {
	if m, ok := l.containers[container]; ok {
		return m
	}
	return l.nested
}

// readsID reports whether the layout reads an event id from the body
// anywhere.
func (l *layout) readsID() bool {
	has := func(ms members) bool {
		for _, m := range ms {
			if m.role == idMember {
				return true
			}
		}
		return false
	}
	if has(l.top) || has(l.nested) {
		return true
	}
	for _, ms := range l.containers {
		if has(ms) {
			return true
		}
	}
	return false
}

// members are the names read in one object, keyed by their case-folded form.
type members map[string]member

// member is what a name means to the gateway.
type member struct {
	name  string // as the provider writes it
	role  role
	field Field // for a data field
	bit   uint8 // its place in the duplicate check of its object
	exact bool  // set by lookup: the key is name itself, not a case variant
}

type role uint8

const (
	fieldMember role = iota
	idMember
	typeMember
	timeMember
	containerMember
)

// What a name means, for the layouts in the provider files.
var (
	asID        = member{role: idMember}
	asType      = member{role: typeMember}
	asTime      = member{role: timeMember}
	asContainer = member{role: containerMember}
)

func asField(f Field) member { return member{role: fieldMember, field: f} }

// dataKeys are the names, snake_case and camelCase, that the providers use
// for the canonical fields.
var dataKeys = map[string]member{
	"message_id": asField(FieldMessageID), "messageId": asField(FieldMessageID),
	"conversation_id": asField(FieldConversationID), "conversationId": asField(FieldConversationID),
	"contact_id": asField(FieldContactID), "contactId": asField(FieldContactID),
	"session_id": asField(FieldSessionID), "sessionId": asField(FieldSessionID),
	"account_id": asField(FieldAccountID), "accountId": asField(FieldAccountID),
	"channel":    asField(FieldChannel),
	"direction":  asField(FieldDirection),
	"from":       asField(FieldFrom),
	"to":         asField(FieldTo),
	"status":     asField(FieldStatus),
	"text":       asField(FieldText),
	"error_code": asField(FieldErrorCode), "errorCode": asField(FieldErrorCode),
	"error_message": asField(FieldErrorMessage), "errorMessage": asField(FieldErrorMessage),
	"template_id": asField(FieldTemplateID), "templateId": asField(FieldTemplateID),
	"template_name": asField(FieldTemplateName), "templateName": asField(FieldTemplateName),
	"reason": asField(FieldReason),
}

// with returns the union of maps; later ones win.
func with(ms ...map[string]member) map[string]member {
	out := map[string]member{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// maxName bounds a name the gateway reads, in bytes once folded.
const maxName = 64

// newLayout builds a layout. Two names that fold to one, or more than 64
// names in one object, are an error.
func newLayout(top, nested map[string]member) (*layout, error) {
	l := &layout{}
	var err error
	if l.top, err = newMembers(top); err != nil {
		return nil, err
	}
	if l.nested, err = newMembers(nested); err != nil {
		return nil, err
	}
	return l, nil
}

// newMembers folds the names of one object. Two names that fold to one,
// or more than 64 names, are an error.
func newMembers(in map[string]member) (members, error) {
	if len(in) > 64 {
		return nil, fmt.Errorf("more than 64 names in one object")
	}
	out := members{}
	for name, m := range in {
		var buf [maxName]byte
		f, ok := fold(buf[:0], []byte(name))
		if !ok || name == "" {
			return nil, fmt.Errorf("name %q: 1 to %d bytes", name, maxName)
		}
		if other, dup := out[string(f)]; dup {
			return nil, fmt.Errorf("names %q and %q differ only in case", other.name, name)
		}
		m.name, m.bit = name, uint8(len(out))
		out[string(f)] = m
	}
	return out, nil
}

func mustLayout(top, nested map[string]member) *layout {
	l, err := newLayout(top, nested)
	if err != nil {
		panic(err)
	}
	return l
}

// lookup returns what a member name (as in the body, escapes and all)
// means, compared as encoding/json compares names.
func (m members) lookup(key []byte) (member, bool) {
	if bytes.IndexByte(key, '\\') >= 0 {
		key = []byte(unquote(key))
	}
	var buf [maxName]byte
	f, ok := fold(buf[:0], key)
	if !ok {
		return member{}, false
	}
	mem, ok := m[string(f)]
	mem.exact = ok && string(key) == mem.name
	return mem, ok
}

// fold appends the case-folded form of name to dst, as encoding/json folds
// names (bytes.EqualFold): each letter becomes the smallest of its Unicode
// fold set, then lower case when that is ASCII. It fails when the result
// would not fit in dst's capacity.
func fold(dst, name []byte) ([]byte, bool) {
	for i := 0; i < len(name); {
		c := name[i]
		if c < utf8.RuneSelf { // the common case, byte by byte
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if len(dst) == cap(dst) {
				return nil, false
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(name[i:])
		for orig, f := r, unicode.SimpleFold(r); f != orig; f = unicode.SimpleFold(f) {
			r = min(r, f)
		}
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		if len(dst)+utf8.RuneLen(r) > cap(dst) {
			return nil, false
		}
		dst = utf8.AppendRune(dst, r)
		i += n
	}
	return dst, true
}
