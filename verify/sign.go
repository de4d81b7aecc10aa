package verify

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Form is one way a provider sends its signature. Where a provider's older
// and current documentation differ, both forms are accepted by Verify.
type Form struct {
	Name        string
	Description string

	headers    headerSet // the headers this form sends
	prefix     string    // before the MAC
	enc        encoding  // hexMAC or base64MAC
	typeHeader string    // a header that repeats the body's type
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

// Sign returns the headers the provider would send for body, signed with
// the Verifier's first secret through the same MAC code that Verify uses.
// It is for tests, examples and the `caddy webhook` tools.
func (v *Verifier) Sign(body []byte, o SignOptions) (http.Header, error) {
	if o.Form == "" {
		o.Form = v.forms[0].Name
	}
	var f *Form
	for i := range v.forms {
		if v.forms[i].Name == o.Form {
			f = &v.forms[i]
		}
	}
	if f == nil {
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
	ts := strconv.FormatInt(o.Time.Unix(), 10)
	if err := separated(v.signed, o.ID, ts); err != nil {
		return nil, err
	}
	mac := func(signed []part) []byte { return v.mac(signed, o.ID, ts, body) }
	h := http.Header{}
	if v.sign != nil {
		h.Set(f.headers.sig, v.sign(f.Name, mac, ts))
	} else {
		h.Set(f.headers.sig, f.prefix+f.enc.encode(mac(v.signed)))
	}
	if f.headers.id != "" {
		h.Set(f.headers.id, o.ID)
	}
	if f.headers.time != "" {
		h.Set(f.headers.time, ts)
	}
	if f.typeHeader != "" {
		if t, ok := tokenString(scanType(body, v.layout)); ok {
			h.Set(f.typeHeader, t)
		}
	}
	return h, nil
}

// NewDeliveryID returns a fresh random id in the Standard Webhooks style.
func NewDeliveryID() string {
	var b [12]byte
	rand.Read(b[:])
	return "msg_" + hex.EncodeToString(b[:])
}
