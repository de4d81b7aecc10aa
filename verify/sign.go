package verify

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Form is one way a provider sends its signature. Where a provider's older
// and current documentation differ, both forms are accepted by Verify.
type Form struct {
	Name        string
	Description string
}

// SignOptions says what to sign besides the body.
type SignOptions struct {
	// Form is the signature form to produce; default the provider's current one.
	Form string
	// ID is the delivery id, for schemes that sign one (Standard Webhooks,
	// Wazapin); default a fresh random id.
	ID string
	// Time is the timestamp, for schemes that sign one; default now.
	Time time.Time
}

// signer is implemented by every scheme: it produces the headers the sender
// would send, through the same MAC code that Verify uses.
type signer interface {
	forms() []Form // the current form first
	sign(v *Verifier, body []byte, form, id string, t time.Time) http.Header
}

// Forms returns the signature forms of the Verifier's provider, the current
// one first.
func (v *Verifier) Forms() []Form {
	return v.scheme.(signer).forms()
}

// Sign returns the headers the provider would send for body, signed with
// the Verifier's first secret. It is for tests, examples and the
// `caddy webhook` tools.
func (v *Verifier) Sign(body []byte, o SignOptions) (http.Header, error) {
	s := v.scheme.(signer)
	forms := s.forms()
	if o.Form == "" {
		o.Form = forms[0].Name
	}
	known := false
	for _, f := range forms {
		known = known || f.Name == o.Form
	}
	if !known {
		return nil, fmt.Errorf("provider %s has no signature form %q", v.name, o.Form)
	}
	if o.ID == "" {
		o.ID = NewDeliveryID()
	}
	if !usableID(o.ID) || strings.TrimSpace(o.ID) != o.ID {
		return nil, fmt.Errorf("id %q cannot be sent in a header: 1 to %d bytes, no control characters or surrounding spaces", o.ID, MaxEventIDLen)
	}
	if o.Time.IsZero() {
		o.Time = v.now()
	}
	return s.sign(v, body, o.Form, o.ID, o.Time), nil
}

// NewDeliveryID returns a fresh random id in the Standard Webhooks style.
func NewDeliveryID() string {
	var b [12]byte
	rand.Read(b[:])
	return "msg_" + hex.EncodeToString(b[:])
}

// oneForm is the forms list of a provider with a single form.
func oneForm(name, desc string) []Form { return []Form{{Name: name, Description: desc}} }
