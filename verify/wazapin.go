package verify

import (
	"net/http"
	"time"
)

// Wazapin
//
// Signature: Standard Webhooks (standard.go): webhook-* or svix-* headers,
//            "whsec_<base64>" secret, HMAC-SHA256 over "<id>.<timestamp>.<body>".
// Body:      a flat object of event-specific fields (message_id,
//            conversation_id, contact_id, channel_id, direction, from_phone,
//            msg_type, status, organization_id, ...). The event name is the
//            delivery's subscription type and is usually not in the body.
// Event id:  the webhook-id (svix-id) header, the same on every retry.
// Timestamp: the signed attempt time, held to Tolerance (default ±5 min).
//            The event's time is the body's "created_at" or "timestamp" when
//            present, otherwise the attempt time.
// Types:     "event_type" or "type" when the body has one; otherwise inferred
//            from the fields:
//              message_id and direction          message.new
//              message_id and status             message.status_update
//              template_id or template_name      template.status_update
//              conversation_id                   conversation.updated
//              contact_id                        contact.updated
//              anything else                     unknown
//            then mapped: message.new is message.received when inbound;
//            message.status_update is message.<status> for a canonical status;
//            template.status_update is template.approved, template.rejected,
//            or template.updated.
// Fields:    from_phone is from, to_phone is to, organization_id is account_id.

var wazapinLayout = &layout{
	top: with(dataKeys, map[string]Field{
		"event_type": slotType, "type": slotType,
		"created_at": slotTime, "timestamp": slotTime,
		"from_phone": FieldFrom, "to_phone": FieldTo,
		"organization_id": FieldAccountID,
	}),
}

type wazapin struct{}

func (wazapin) signatureHeaders() []string { return standardSignatureHeaders }

func (wazapin) windows() (attempt, event bool) { return true, false }

func (wazapin) verify(v *Verifier, h http.Header, body []byte, ev *Event) error {
	if err := verifyStandard(v, h, body, ev); err != nil {
		return err
	}
	if err := scanBody(body, wazapinLayout, &ev.raw); err != nil {
		return err
	}
	bodyTime(ev)
	ev.ProviderType = wazapinInferType(ev)
	ev.Type = wazapinCanonicalType(ev)
	return nil
}

// wazapinInferType returns the body's event name, or one inferred from the
// fields present when the body has none.
func wazapinInferType(ev *Event) string {
	if ev.raw[slotType] != nil {
		return ev.typeToken()
	}
	has := func(f Field) bool { t := ev.raw[f]; return t != nil && string(t) != "null" }
	switch {
	case has(FieldMessageID) && has(FieldDirection):
		return "message.new"
	case has(FieldMessageID) && has(FieldStatus):
		return "message.status_update"
	case has(FieldTemplateID) || has(FieldTemplateName):
		return "template.status_update"
	case has(FieldConversationID) && !has(FieldMessageID):
		return "conversation.updated"
	case has(FieldContactID) && !has(FieldMessageID):
		return "contact.updated"
	}
	return "unknown"
}

func wazapinCanonicalType(ev *Event) string {
	status, _ := ev.Field(FieldStatus)
	switch ev.ProviderType {
	case "message.new":
		if d, _ := ev.Field(FieldDirection); d == "inbound" {
			return "message.received"
		}
	case "message.status_update":
		if c, ok := canonicalTypes["message."+status]; ok && status != "" {
			return c
		}
	case "template.status_update":
		switch status {
		case "approved":
			return "template.approved"
		case "rejected":
			return "template.rejected"
		}
		return "template.updated"
	default:
		if c, ok := canonicalTypes[ev.ProviderType]; ok {
			return c
		}
	}
	return ev.ProviderType
}

func (wazapin) forms() []Form { return standardForms }

func (wazapin) sign(v *Verifier, body []byte, form, id string, t time.Time) http.Header {
	return signStandard(v, body, form, id, t)
}
