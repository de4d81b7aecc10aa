package verify

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// Vobiz
//
// Header, seed form:    X-Vobiz-Signature: HMAC-SHA256(secret, raw body).
// Header, current form: X-Webhook-Signature (with X-Webhook-Event, which is
//                       not signed and therefore not used).
//                       X-Webhook-Signature is read when present, otherwise
//                       X-Vobiz-Signature. The MAC is accepted in hex (64
//                       characters) or base64 (standard or URL alphabet,
//                       padded or not), with or without a "sha256=" prefix.
// Body:      current form {"event_id" (UUID), "event_type", "account_id",
//            "occurred_at", "payload": {...}}; the seed form's "id", "event",
//            "type", "timestamp" and "data" are read as well.
// Event id:  "event_id" (or "id"); when absent, derived from the raw body as
//            for Wazera (first 128 bits of its SHA-256, hex).
// Timestamp: "occurred_at" or "timestamp", event time, required, held to
//            MaxAge (default 30 h, above the 24 h retry horizon).
// Types:     Vobiz's names are already canonical.

// Vobiz's signature headers, seed and current.
const (
	HeaderVobizSignature        = "X-Vobiz-Signature"
	HeaderVobizWebhookSignature = "X-Webhook-Signature"
	HeaderVobizWebhookEvent     = "X-Webhook-Event"
)

var vobizLayout = &layout{
	top: with(dataKeys, map[string]Field{
		"event_id": slotID, "id": slotID,
		"event_type": slotType, "event": slotType, "type": slotType,
		"occurred_at": slotTime, "timestamp": slotTime,
	}),
	containers: set("payload", "data"),
	nested:     dataKeys,
}

type vobiz struct{}

func (vobiz) signatureHeaders() []string {
	return []string{HeaderVobizSignature, HeaderVobizWebhookSignature}
}

func (vobiz) windows() (attempt, event bool) { return false, true }

func (vobiz) verify(v *Verifier, h http.Header, body []byte, ev *Event) error {
	name := HeaderVobizWebhookSignature
	if len(h.Values(name)) == 0 {
		name = HeaderVobizSignature
	}
	sig, err := singleHeader(h, name)
	if err != nil {
		return err
	}
	sig = strings.TrimPrefix(sig, "sha256=")
	var c candidates
	if len(sig) == 2*sha256.Size {
		err = c.addHex(sig, sha256.Size)
	} else {
		err = c.addBase64(sig, sha256.Size)
	}
	if err != nil {
		return err
	}
	if !v.match(&c, body) {
		return ErrNoMatch
	}
	if err := scanBody(body, vobizLayout, &ev.raw); err != nil {
		return err
	}
	if err := v.eventTime(ev); err != nil {
		return err
	}
	ev.setType(ev.typeToken(), nil)
	return ev.setID(true)
}

func (vobiz) forms() []Form {
	return []Form{
		{"current", "X-Webhook-Signature: <hex HMAC-SHA256 of the body>, X-Webhook-Event: <type> (current docs)"},
		{"current-base64", "X-Webhook-Signature: <base64 HMAC-SHA256 of the body> (current docs)"},
		{"seed", "X-Vobiz-Signature: <hex HMAC-SHA256 of the body> (seed docs)"},
		{"seed-base64", "X-Vobiz-Signature: sha256=<base64 HMAC-SHA256 of the body> (seed docs)"},
	}
}

func (vobiz) sign(v *Verifier, body []byte, form, _ string, _ time.Time) http.Header {
	mac := v.sign("", body)
	h := http.Header{}
	switch form {
	case "current-base64":
		h.Set(HeaderVobizWebhookSignature, base64.StdEncoding.EncodeToString(mac))
	case "seed":
		h.Set(HeaderVobizSignature, hex.EncodeToString(mac))
	case "seed-base64":
		h.Set(HeaderVobizSignature, "sha256="+base64.StdEncoding.EncodeToString(mac))
	default:
		h.Set(HeaderVobizWebhookSignature, hex.EncodeToString(mac))
		if t, ok := tokenString(scanType(body, vobizLayout)); ok {
			h.Set(HeaderVobizWebhookEvent, t)
		}
	}
	return h
}
