package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Zavu
//
// Header, seed form:    X-Zavu-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>
// Header, current form: X-Zavu-Signature: t=<unix seconds>,v1=<hex>[,v2=<hex>]
//                       v2 = HMAC over "<t>.<raw body>" (current scheme),
//                       v1 = HMAC over the raw body (legacy). When any v2 is
//                       present only v2 is checked; otherwise v1.
// Secret:    "whsec_..." used as its raw UTF-8 bytes, not base64-decoded.
// Body:      {"id", "type", "timestamp" (Unix milliseconds, event time),
//            "projectId", "data": {"messageId", "to", "from", ...}}.
// Event id:  the body's "id".
// Timestamp: "t" is per attempt: held to Tolerance (default 5 min). The
//            body's "timestamp" is event time: held to MaxAge (default 4 h,
//            above the last retry at about 2.6 h). Both are checked when
//            present, so a captured current-form request replayed in the
//            seed form is still bounded by the event time and the dedupe store.
// Types:     "message.inbound" becomes "message.received"; the rest are canonical.
// Fields:    "projectId" is account_id; "name" (template events) is template_name.

// HeaderZavuSignature is Zavu's signature header.
const HeaderZavuSignature = "X-Zavu-Signature"

var zavuLayout = &layout{
	top: map[string]Field{
		"id": slotID, "type": slotType, "timestamp": slotTime, "projectId": FieldAccountID,
	},
	containers: set("data"),
	nested:     with(dataKeys, map[string]Field{"name": FieldTemplateName}),
}

var zavuRenames = map[string]string{"message.inbound": "message.received"}

type zavu struct{}

func (zavu) signatureHeaders() []string { return []string{HeaderZavuSignature} }

func (zavu) windows() (attempt, event bool) { return true, true }

func (zavu) verify(v *Verifier, h http.Header, body []byte, ev *Event) error {
	sig, err := singleHeader(h, HeaderZavuSignature)
	if err != nil {
		return err
	}
	var c candidates
	var prefix []string
	if hexSig, ok := strings.CutPrefix(sig, "sha256="); ok {
		if err := c.addHex(hexSig, sha256.Size); err != nil {
			return err
		}
	} else {
		var v1, v2 candidates
		var ts string
		for part := range strings.SplitSeq(sig, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok {
				return fmt.Errorf("%w: expected sha256=<hex> or t=<time>,v1=<hex>", ErrMalformedSignature)
			}
			switch k {
			case "t":
				if ts != "" {
					return fmt.Errorf("%w: t repeated", ErrMalformedSignature)
				}
				ts = val
			case "v1":
				err = v1.addHex(val, sha256.Size)
			case "v2":
				err = v2.addHex(val, sha256.Size)
			}
			if err != nil {
				return err
			}
		}
		switch {
		case v2.n > 0:
			if ts == "" {
				return ErrMissingTimestamp
			}
			c, prefix = v2, []string{ts, "."}
		case v1.n > 0:
			c = v1
		default:
			return fmt.Errorf("%w: no v1 or v2 signature", ErrMalformedSignature)
		}
		if ts != "" {
			t, err := parseUnixSeconds(ts)
			if err != nil {
				return err
			}
			if err := v.attemptTime(t, ev); err != nil {
				return err
			}
		}
	}
	if !v.match(&c, body, prefix...) {
		return ErrNoMatch
	}
	if err := scanBody(body, zavuLayout, &ev.raw); err != nil {
		return err
	}
	if err := v.eventTime(ev); err != nil {
		return err
	}
	ev.setType(ev.typeToken(), zavuRenames)
	return ev.setID(false)
}

func (zavu) forms() []Form {
	return []Form{
		{"v2", "X-Zavu-Signature: t=<unix>,v1=<hex HMAC of body>,v2=<hex HMAC of t.body> (current docs)"},
		{"v1", "X-Zavu-Signature: t=<unix>,v1=<hex HMAC of body> (current docs, legacy signature only)"},
		{"seed", "X-Zavu-Signature: sha256=<hex HMAC of body> (seed docs)"},
	}
}

func (zavu) sign(v *Verifier, body []byte, form, _ string, t time.Time) http.Header {
	h := http.Header{}
	ts := strconv.FormatInt(t.Unix(), 10)
	v1 := hex.EncodeToString(v.sign("", body))
	switch form {
	case "seed":
		h.Set(HeaderZavuSignature, "sha256="+v1)
	case "v1":
		h.Set(HeaderZavuSignature, "t="+ts+",v1="+v1)
	default:
		h.Set(HeaderZavuSignature, "t="+ts+",v1="+v1+",v2="+hex.EncodeToString(v.sign(ts+".", body)))
	}
	return h
}
