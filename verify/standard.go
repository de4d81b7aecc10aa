package verify

// Standard Webhooks (https://www.standardwebhooks.com/), also sent by Svix.
//
// Headers:   webhook-id, webhook-timestamp, webhook-signature, or the same
//            with the svix- prefix. When any webhook-* header is present the
//            webhook-* set is read, otherwise the svix-* set; sets are never
//            mixed. All three are required: the id and the timestamp are
//            signed, so a request without one cannot be authenticated.
// Secret:    "whsec_" followed by standard base64, padded or not: the key is
//            the decoded bytes.
// Signed:    "<id>.<timestamp>.<raw body>", HMAC-SHA256. An id holding "."
//            is refused: the signed text could be split another way.
// Signature: space-separated "<version>,<base64>" entries; v1 entries are
//            checked, other versions ignored; any match passes. At most 16 entries.
// Timestamp: Unix seconds of the delivery attempt, held to Tolerance
//            (default 5 min) in the past and FutureSkew (default 5 min) ahead.
// Event id:  the id header, which is the same on every retry.
//
// The generic "standard" provider reads the body the specification
// recommends: {"type", "timestamp", "data": {...}}; the body's timestamp,
// when valid, is the event's time. Wazapin (wazapin.go) uses the same
// signature with its own body.

// Standard Webhooks header names, and their Svix equivalents.
const (
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
	HeaderSvixID           = "Svix-Id"
	HeaderSvixTimestamp    = "Svix-Timestamp"
	HeaderSvixSignature    = "Svix-Signature"
)

var standard = provider{
	name:       Standard,
	key:        decodeWhsec,
	prefix:     "v1,",
	list:       true,
	enc:        base64MAC,
	signed:     []part{{ref: "id"}, {lit: "."}, {ref: "timestamp"}, {lit: "."}},
	headerTime: attemptTime,
	bodyTime:   infoTime,
	futureSkew: DefaultTolerance, // the specification's window is symmetric
	layout: mustLayout(
		map[string]member{"type": asType, "timestamp": asTime, "data": asContainer},
		dataKeys),
	types: canonical,
	forms: standardForms,
}

var standardForms = []Form{
	{Name: "webhook", Description: "webhook-id, webhook-timestamp, webhook-signature: v1,<base64> (Standard Webhooks)",
		headers: headerSet{HeaderWebhookSignature, HeaderWebhookID, HeaderWebhookTimestamp}, prefix: "v1,", enc: base64MAC},
	{Name: "svix", Description: "svix-id, svix-timestamp, svix-signature: v1,<base64> (Svix)",
		headers: headerSet{HeaderSvixSignature, HeaderSvixID, HeaderSvixTimestamp}, prefix: "v1,", enc: base64MAC},
}
