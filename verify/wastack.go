package verify

import "time"

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
// Timestamp: event time, held to MaxAge, default 36 h: WAStack retries after
//            1 m, 5 m, 15 m, 1 h, 6 h and 24 h (the last about 31.3 h after
//            the first attempt), then pauses the endpoint.
// Types:     WAStack's names are already canonical (message.received,
//            message.sent, message.delivered, message.read, message.failed,
//            media.uploaded, session.connected, session.disconnected,
//            automation.triggered).

// HeaderWAStackSignature is WAStack's signature header.
const HeaderWAStackSignature = "X-WAStack-Signature"

var wastack = provider{
	name:     WAStack,
	prefix:   "sha256=",
	enc:      hexMAC,
	bodyTime: eventTime,
	maxAge:   36 * time.Hour,
	layout: mustLayout(
		with(dataKeys, map[string]member{
			"id": asID, "event_id": asID, "event": asType, "type": asType, "timestamp": asTime, "data": asContainer,
		}),
		dataKeys),
	deriveID: true,
	types:    canonical,
	forms: []Form{{
		Name: "sha256", Description: "X-WAStack-Signature: sha256=<hex HMAC-SHA256 of the body>",
		headers: headerSet{sig: HeaderWAStackSignature}, prefix: "sha256=", enc: hexMAC,
	}},
}
