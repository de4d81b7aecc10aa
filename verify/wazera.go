package verify

import "time"

// Wazera
//
// Header:    X-Wazera-Signature: <hex HMAC-SHA256(secret, raw body)>, no prefix.
// Body:      {"event", "timestamp" (RFC 3339, event time), "data": {"message_id",
//            "to", "status", "delivered_at", ...}}.
// Event id:  Wazera sends none. The id is derived from the raw body (the
//            first 128 bits of its SHA-256, hex): Wazera repeats the body
//            unchanged on its retries, and two different events never share it.
// Timestamp: "timestamp" is event time, repeated on retries; held to MaxAge,
//            default 30 h: Wazera retries 5 times, after 1 m, 5 m, 30 m, 2 h
//            and 24 h (the last about 26.6 h after the first attempt), then
//            disables the endpoint.
// Types:     Wazera's names are already canonical (message.sent,
//            message.delivered, message.read, message.failed,
//            message.received, contact.created, contact.updated,
//            campaign.completed).

// HeaderWazeraSignature is Wazera's signature header.
const HeaderWazeraSignature = "X-Wazera-Signature"

var wazera = provider{
	name:     Wazera,
	enc:      hexMAC,
	bodyTime: eventTime,
	maxAge:   30 * time.Hour,
	layout: mustLayout(
		map[string]member{"event": asType, "timestamp": asTime, "data": asContainer},
		dataKeys),
	deriveID: true,
	types:    canonical,
	forms: []Form{{
		Name: "hex", Description: "X-Wazera-Signature: <hex HMAC-SHA256 of the body>",
		headers: headerSet{sig: HeaderWazeraSignature}, enc: hexMAC,
	}},
}
