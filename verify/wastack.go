package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// WAStack
//
// Header:    X-WAStack-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>
// Body:      event type, timestamp, session id and data. WAStack does not
//            publish the field names, so both spellings seen in its SDKs
//            are read: "event" or "type"; "session_id" or "sessionId";
//            "id" or "event_id"; "timestamp" as RFC 3339, Unix seconds or
//            Unix milliseconds; canonical fields at the top level or in "data".
// Event id:  "id" or "event_id" when present; otherwise derived from the raw
//            body as for Wazera (first 128 bits of its SHA-256, hex).
// Timestamp: event time, held to MaxAge (default 36 h, above the last retry
//            at about 31.3 h).
// Types:     WAStack's names are already canonical.

// HeaderWAStackSignature is WAStack's signature header.
const HeaderWAStackSignature = "X-WAStack-Signature"

var wastackLayout = &layout{
	top: with(dataKeys, map[string]Field{
		"id": slotID, "event_id": slotID,
		"event": slotType, "type": slotType,
		"timestamp": slotTime,
	}),
	containers: set("data"),
	nested:     dataKeys,
}

type wastack struct{}

func (wastack) signatureHeaders() []string { return []string{HeaderWAStackSignature} }

func (wastack) windows() (attempt, event bool) { return false, true }

func (wastack) verify(v *Verifier, h http.Header, body []byte, ev *Event) error {
	sig, err := singleHeader(h, HeaderWAStackSignature)
	if err != nil {
		return err
	}
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return fmt.Errorf("%w: expected sha256=<hex>", ErrMalformedSignature)
	}
	var c candidates
	if err := c.addHex(hexSig, sha256.Size); err != nil {
		return err
	}
	if !v.match(&c, body) {
		return ErrNoMatch
	}
	if err := scanBody(body, wastackLayout, &ev.raw); err != nil {
		return err
	}
	if err := v.eventTime(ev); err != nil {
		return err
	}
	ev.setType(ev.typeToken(), nil)
	return ev.setID(true)
}

func (wastack) forms() []Form {
	return oneForm("sha256", "X-WAStack-Signature: sha256=<hex HMAC-SHA256 of the body>")
}

func (wastack) sign(v *Verifier, body []byte, _, _ string, _ time.Time) http.Header {
	h := http.Header{}
	h.Set(HeaderWAStackSignature, "sha256="+hex.EncodeToString(v.sign("", body)))
	return h
}
