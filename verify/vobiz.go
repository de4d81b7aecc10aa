package verify

import "time"

// Vobiz
//
// Header, older form:   X-Vobiz-Signature: HMAC-SHA256(secret, raw body).
// Header, current form: X-Webhook-Signature (with X-Webhook-Event, which is
//                       not signed and therefore not used).
//                       X-Webhook-Signature is read when present, otherwise
//                       X-Vobiz-Signature. The MAC is accepted in hex (64
//                       characters) or base64 (standard or URL alphabet,
//                       padded or not), with or without a "sha256=" prefix.
// Body:      current form {"event_id" (UUID), "event_type", "account_id",
//            "occurred_at", "payload": {...}}; the older form's "id", "event",
//            "type", "timestamp" and "data" are read as well.
// Event id:  "event_id" (or "id"); when absent, derived from the raw body as
//            for Wazera (first 128 bits of its SHA-256, hex).
// Timestamp: "occurred_at" or "timestamp", event time, required, held to
//            MaxAge, default 30 h: Vobiz retries for up to 24 h.
// Types:     Vobiz's names are already canonical (message.received,
//            message.sent, message.delivered, message.read, message.failed,
//            contact.updated, campaign.completed).
// Secrets:   rotated from Vobiz's console: list the old and the new secret
//            while both may sign.

// Vobiz's signature headers, current and older, and its unsigned type header.
const (
	HeaderVobizSignature        = "X-Vobiz-Signature"
	HeaderVobizWebhookSignature = "X-Webhook-Signature"
	HeaderVobizWebhookEvent     = "X-Webhook-Event"
)

var vobiz = provider{
	name:           Vobiz,
	prefix:         "sha256=",
	prefixOptional: true,
	enc:            hexOrBase64MAC,
	bodyTime:       eventTime,
	maxAge:         30 * time.Hour,
	layout: mustLayout(
		with(dataKeys, map[string]member{
			"event_id": asID, "id": asID,
			"event_type": asType, "event": asType, "type": asType,
			"occurred_at": asTime, "timestamp": asTime,
			"payload": asContainer, "data": asContainer,
		}),
		dataKeys),
	deriveID: true,
	types:    canonical,
	forms: []Form{
		{Name: "current", Description: "X-Webhook-Signature: <hex HMAC-SHA256 of the body>, X-Webhook-Event: <type> (current docs)",
			headers: headerSet{sig: HeaderVobizWebhookSignature}, enc: hexMAC, typeHeader: HeaderVobizWebhookEvent},
		{Name: "current-base64", Description: "X-Webhook-Signature: <base64 HMAC-SHA256 of the body> (current docs)",
			headers: headerSet{sig: HeaderVobizWebhookSignature}, enc: base64MAC},
		{Name: "seed", Description: "X-Vobiz-Signature: <hex HMAC-SHA256 of the body> (older docs)",
			headers: headerSet{sig: HeaderVobizSignature}, enc: hexMAC},
		{Name: "seed-base64", Description: "X-Vobiz-Signature: sha256=<base64 HMAC-SHA256 of the body> (older docs)",
			headers: headerSet{sig: HeaderVobizSignature}, prefix: "sha256=", enc: base64MAC},
	},
}
