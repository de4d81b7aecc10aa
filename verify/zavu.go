package verify

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"time"
)

// Zavu
//
// Header, older form:   X-Zavu-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>
// Header, current form: X-Zavu-Signature: t=<unix seconds>,v1=<hex>[,v2=<hex>]
//                       v2 = HMAC over "<t>.<raw body>" (current scheme),
//                       v1 = HMAC over the raw body (legacy). When any v2 is
//                       present only v2 is checked; otherwise v1.
// Secret:    "whsec_..." used as its raw UTF-8 bytes, not base64-decoded.
// Body:      {"id", "type", "timestamp" (Unix milliseconds, event time),
//            "projectId", "data": {"messageId", "to", "from", ...}}.
// Event id:  the body's "id", required.
// Timestamp: "t" is per attempt: held to Tolerance (default 5 min). The
//            body's "timestamp" is event time: held to MaxAge, default 4 h:
//            Zavu retries immediately, then after 1 m, 5 m, 30 m and 2 h
//            (the last about 2.6 h after the first attempt). Both are
//            checked when present, so a captured current-form request
//            replayed in the older form is still bounded by the event time
//            and the dedupe store.
// Types:     "message.inbound" becomes "message.received"; the rest
//            (message.queued, message.sent, message.delivered,
//            message.failed, template.approved, template.rejected) are canonical.
// Fields:    "projectId" is account_id; "name" (template events) is template_name.

// HeaderZavuSignature is Zavu's signature header.
const HeaderZavuSignature = "X-Zavu-Signature"

var zavu = provider{
	name:  Zavu,
	parse: parseZavu,
	formOf: func(value string) string {
		switch {
		case strings.HasPrefix(value, "sha256="):
			return "seed"
		case strings.Contains(value, "v2="):
			return "v2"
		}
		return "v1"
	},
	headerTime: attemptTime,
	bodyTime:   eventTime,
	maxAge:     4 * time.Hour,
	layout: mustLayout(
		map[string]member{"id": asID, "type": asType, "timestamp": asTime, "projectId": asField(FieldAccountID), "data": asContainer},
		with(dataKeys, map[string]member{"name": asField(FieldTemplateName)})),
	types: typeMap(map[string]string{"message.inbound": "message.received"}),
	forms: []Form{
		{Name: "v2", Description: "X-Zavu-Signature: t=<unix>,v1=<hex HMAC of body>,v2=<hex HMAC of t.body> (current docs)", headers: zavuHeaders},
		{Name: "v1", Description: "X-Zavu-Signature: t=<unix>,v1=<hex HMAC of body> (current docs, legacy signature only)", headers: zavuHeaders},
		{Name: "seed", Description: "X-Zavu-Signature: sha256=<hex HMAC of body> (older docs)", headers: zavuHeaders},
	},
	sign: signZavu,
}

var (
	zavuHeaders = headerSet{sig: HeaderZavuSignature}
	zavuV2      = []part{{ref: "timestamp"}, {lit: "."}}
)

func parseZavu(sig string) (r request, err error) {
	if hexSig, ok := strings.CutPrefix(sig, "sha256="); ok {
		return r, r.c.add(hexSig, sha256.Size, hexMAC)
	}
	var v1, v2 candidates
	for part := range strings.SplitSeq(sig, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
			return r, fmt.Errorf("%w: expected sha256=<hex> or t=<time>,v1=<hex>", ErrMalformedSignature)
		case k == "t" && r.ts != "":
			return r, fmt.Errorf("%w: t repeated", ErrMalformedSignature)
		case k == "t":
			r.ts = val
		case k == "v1":
			err = v1.add(val, sha256.Size, hexMAC)
		case k == "v2":
			err = v2.add(val, sha256.Size, hexMAC)
		}
		if err != nil {
			return r, err
		}
	}
	switch {
	case v2.n > 0 && r.ts == "":
		return r, ErrMissingTimestamp
	case v2.n > 0:
		r.c, r.signed = v2, zavuV2
	case v1.n > 0:
		r.c = v1
	default:
		return r, fmt.Errorf("%w: no v1 or v2 signature", ErrMalformedSignature)
	}
	return r, nil
}

func signZavu(form string, mac func([]part) []byte, ts string) string {
	v1 := hexMAC.encode(mac(nil))
	switch form {
	case "seed":
		return "sha256=" + v1
	case "v1":
		return "t=" + ts + ",v1=" + v1
	}
	return "t=" + ts + ",v1=" + v1 + ",v2=" + hexMAC.encode(mac(zavuV2))
}
