package verify

// dataKeys are the member names, snake_case and camelCase, that the
// providers use for the canonical fields inside their data objects.
var dataKeys = map[string]Field{
	"message_id": FieldMessageID, "messageId": FieldMessageID,
	"conversation_id": FieldConversationID, "conversationId": FieldConversationID,
	"contact_id": FieldContactID, "contactId": FieldContactID,
	"session_id": FieldSessionID, "sessionId": FieldSessionID,
	"account_id": FieldAccountID, "accountId": FieldAccountID,
	"channel":    FieldChannel,
	"direction":  FieldDirection,
	"from":       FieldFrom,
	"to":         FieldTo,
	"status":     FieldStatus,
	"text":       FieldText,
	"error_code": FieldErrorCode, "errorCode": FieldErrorCode,
	"error_message": FieldErrorMessage, "errorMessage": FieldErrorMessage,
	"template_id": FieldTemplateID, "templateId": FieldTemplateID,
	"template_name": FieldTemplateName, "templateName": FieldTemplateName,
	"reason": FieldReason,
}

// with returns a copy of base with extra added; extra wins.
func with(base map[string]Field, extra map[string]Field) map[string]Field {
	m := make(map[string]Field, len(base)+len(extra))
	for k, f := range base {
		m[k] = f
	}
	for k, f := range extra {
		m[k] = f
	}
	return m
}

// set returns a set of names.
func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
