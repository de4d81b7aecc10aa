package verify

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks (https://www.standardwebhooks.com/), also sent by Svix.
//
// Headers:   webhook-id, webhook-timestamp, webhook-signature, or the same
//            with the svix- prefix. When any webhook-* header is present the
//            webhook-* set is used, otherwise the svix-* set; sets are never mixed.
// Secret:    "whsec_<base64>": the key is the decoded bytes.
// Signed:    "<id>.<timestamp>.<raw body>", HMAC-SHA256.
// Signature: space-separated "<version>,<base64>" entries; v1 entries are
//            checked, other versions ignored; any match passes. At most 16 entries.
// Timestamp: Unix seconds of the delivery attempt, held to Tolerance
//            (default 5 min) in the past and FutureSkew (default 5 min) ahead.
// Event id:  the id header, which is the same on every retry.
//
// The generic "standard" provider reads the body the specification
// recommends: {"type", "timestamp", "data": {...}}. Wazapin (wazapin.go)
// uses the same signature with its own body.

// Standard Webhooks header names, and their Svix equivalents.
const (
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
	HeaderSvixID           = "Svix-Id"
	HeaderSvixTimestamp    = "Svix-Timestamp"
	HeaderSvixSignature    = "Svix-Signature"
)

// verifyStandard checks a Standard Webhooks signature and sets ev.ID and
// ev.Time (to the attempt time; the body may give a better one).
func verifyStandard(v *Verifier, h http.Header, body []byte, ev *Event) error {
	idName, tsName, sigName := HeaderWebhookID, HeaderWebhookTimestamp, HeaderWebhookSignature
	if h.Get(HeaderWebhookID) == "" && h.Get(HeaderWebhookTimestamp) == "" && h.Get(HeaderWebhookSignature) == "" {
		idName, tsName, sigName = HeaderSvixID, HeaderSvixTimestamp, HeaderSvixSignature
	}
	sig, err := singleHeader(h, sigName)
	if err != nil {
		return err
	}
	id, err := singleHeader(h, idName)
	if err != nil {
		if err == ErrMissingSignature {
			return ErrMissingEventID
		}
		return err
	}
	if !usableID(id) {
		return ErrMissingEventID
	}
	ts, err := singleHeader(h, tsName)
	if err != nil {
		if err == ErrMissingSignature {
			return ErrMissingTimestamp
		}
		return err
	}
	t, err := parseUnixSeconds(ts)
	if err != nil {
		return err
	}
	if err := v.attemptTime(t, ev); err != nil {
		return err
	}
	var c candidates
	entries := 0
	for entry := range strings.FieldsSeq(sig) {
		if entries++; entries > maxCandidates {
			return fmt.Errorf("%w: more than %d signatures", ErrMalformedSignature, maxCandidates)
		}
		version, b64, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		if err := c.addBase64(b64, sha256Alg.size); err != nil {
			return err
		}
	}
	if c.n == 0 {
		return fmt.Errorf("%w: no v1 signature", ErrMalformedSignature)
	}
	if !v.match(&c, body, id, ".", ts, ".") {
		return ErrNoMatch
	}
	ev.ID = id
	ev.Time = t
	return nil
}

var standardLayout = &layout{
	top:        map[string]Field{"type": slotType, "timestamp": slotTime},
	containers: set("data"),
	nested:     dataKeys,
}

type standard struct{}

var standardSignatureHeaders = []string{HeaderWebhookSignature, HeaderSvixSignature}

func (standard) signatureHeaders() []string { return standardSignatureHeaders }

func (standard) windows() (attempt, event bool) { return true, false }

func (standard) verify(v *Verifier, h http.Header, body []byte, ev *Event) error {
	if err := verifyStandard(v, h, body, ev); err != nil {
		return err
	}
	if err := scanBody(body, standardLayout, &ev.raw); err != nil {
		return err
	}
	bodyTime(ev)
	ev.setType(ev.typeToken(), nil)
	return nil
}

// bodyTime replaces the attempt time with the body's event time when the
// body has a valid one. It is informative only: the attempt time is what
// was signed and checked.
func bodyTime(ev *Event) {
	if t, err := parseTimeToken(ev.raw[slotTime]); err == nil {
		ev.Time = t
	}
}

func (standard) forms() []Form { return standardForms }

func (standard) sign(v *Verifier, body []byte, form, id string, t time.Time) http.Header {
	return signStandard(v, body, form, id, t)
}

var standardForms = []Form{
	{"webhook", "webhook-id, webhook-timestamp, webhook-signature: v1,<base64> (Standard Webhooks)"},
	{"svix", "svix-id, svix-timestamp, svix-signature: v1,<base64> (Svix)"},
}

func signStandard(v *Verifier, body []byte, form, id string, t time.Time) http.Header {
	ts := strconv.FormatInt(t.Unix(), 10)
	sig := "v1," + base64.StdEncoding.EncodeToString(v.sign(id+"."+ts+".", body))
	h := http.Header{}
	if form == "svix" {
		h.Set(HeaderSvixID, id)
		h.Set(HeaderSvixTimestamp, ts)
		h.Set(HeaderSvixSignature, sig)
	} else {
		h.Set(HeaderWebhookID, id)
		h.Set(HeaderWebhookTimestamp, ts)
		h.Set(HeaderWebhookSignature, sig)
	}
	return h
}
