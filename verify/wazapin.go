package verify

// Wazapin
//
// Signature: Standard Webhooks (standard.go): webhook-* or svix-* headers,
//            "whsec_<base64>" secret, HMAC-SHA256 over "<id>.<timestamp>.<body>".
//            Wazapin's own docs answer 403 to a bad signature; the gateway
//            answers 401 as for every provider.
// Body:      a flat object of event-specific fields (message_id,
//            conversation_id, contact_id, channel_id, direction, from_phone,
//            msg_type, status, organization_id, ...). The event name is the
//            delivery's subscription type and is usually not in the body.
// Event id:  the webhook-id (svix-id) header, the same on every retry.
// Timestamp: the signed attempt time, held to Tolerance (default ±5 min).
//            The event's time is the body's "created_at" or "timestamp" when
//            present, otherwise the attempt time. Wazapin retries on the Svix
//            schedule, for about 27 h: the dedupe TTL must cover it.
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

var wazapin = provider{
	name:       Wazapin,
	key:        decodeWhsec,
	prefix:     "v1,",
	list:       true,
	enc:        base64MAC,
	signed:     standard.signed,
	headerTime: attemptTime,
	bodyTime:   infoTime,
	futureSkew: DefaultTolerance,
	layout: mustLayout(with(dataKeys, map[string]member{
		"event_type": asType, "type": asType,
		"created_at": asTime, "timestamp": asTime,
		"from_phone": asField(FieldFrom), "to_phone": asField(FieldTo),
		"organization_id": asField(FieldAccountID),
	}), nil),
	setType: wazapinType,
	forms:   standardForms,
}

// wazapinType returns the event's types from the body's event name, or
// from one inferred from the fields present when the body has none.
func wazapinType(ev Event) (providerType, typ string) {
	has := func(f Field) bool { t := ev.fields[f]; return t != nil && string(t) != "null" }
	name, ok := tokenString(ev.typ)
	switch {
	case ev.typ != nil:
		if !ok || name == "" {
			name = "unknown"
		}
	case has(FieldMessageID) && has(FieldDirection):
		name = "message.new"
	case has(FieldMessageID) && has(FieldStatus):
		name = "message.status_update"
	case has(FieldTemplateID) || has(FieldTemplateName):
		name = "template.status_update"
	case has(FieldConversationID) && !has(FieldMessageID):
		name = "conversation.updated"
	case has(FieldContactID) && !has(FieldMessageID):
		name = "contact.updated"
	default:
		name = "unknown"
	}
	if c, ok := canonical[name]; ok {
		name = c
	}
	status, _ := ev.Field(FieldStatus)
	switch name {
	case "message.new":
		if d, _ := ev.Field(FieldDirection); d == "inbound" {
			return name, "message.received"
		}
	case "message.status_update":
		if c, ok := canonical["message."+status]; ok && status != "" {
			return name, c
		}
	case "template.status_update":
		switch status {
		case "approved":
			return name, "template.approved"
		case "rejected":
			return name, "template.rejected"
		}
		return name, "template.updated"
	}
	return name, name
}
