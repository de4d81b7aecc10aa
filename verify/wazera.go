package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"
)

// Wazera
//
// Header:    X-Wazera-Signature: <hex HMAC-SHA256(secret, raw body)>, no prefix.
// Body:      {"event", "timestamp" (RFC 3339, event time), "data": {...}}.
// Event id:  Wazera sends none. The id is derived from the raw body (the
//            first 128 bits of its SHA-256, hex): Wazera repeats the body
//            unchanged on its retries, and two different events never share it.
// Timestamp: "timestamp" is event time, repeated on retries; held to MaxAge
//            (default 30 h, above the last retry at about 26.6 h).
// Types:     Wazera's names are already canonical.

// HeaderWazeraSignature is Wazera's signature header.
const HeaderWazeraSignature = "X-Wazera-Signature"

var wazeraLayout = &layout{
	top:        map[string]Field{"event": slotType, "timestamp": slotTime},
	containers: set("data"),
	nested:     dataKeys,
}

type wazera struct{}

func (wazera) signatureHeaders() []string { return []string{HeaderWazeraSignature} }

func (wazera) windows() (attempt, event bool) { return false, true }

func (wazera) verify(v *Verifier, h http.Header, body []byte, ev *Event) error {
	sig, err := singleHeader(h, HeaderWazeraSignature)
	if err != nil {
		return err
	}
	var c candidates
	if err := c.addHex(sig, sha256.Size); err != nil {
		return err
	}
	if !v.match(&c, body) {
		return ErrNoMatch
	}
	if err := scanBody(body, wazeraLayout, &ev.raw); err != nil {
		return err
	}
	if err := v.eventTime(ev); err != nil {
		return err
	}
	ev.setType(ev.typeToken(), nil)
	return ev.setID(true)
}

func (wazera) forms() []Form {
	return oneForm("hex", "X-Wazera-Signature: <hex HMAC-SHA256 of the body>")
}

func (wazera) sign(v *Verifier, body []byte, _, _ string, _ time.Time) http.Header {
	h := http.Header{}
	h.Set(HeaderWazeraSignature, hex.EncodeToString(v.sign("", body)))
	return h
}
