package inspector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Members whose string values are masked, by what they hold. Names are
// compared in lower case with '-' taken for '_'.
var (
	nameMembers = []string{"name", "first_name", "last_name", "full_name", "display_name", "profile_name",
		"contact_name", "sender_name", "push_name", "pushname", "username", "nickname", "given_name", "family_name"}
	textMembers  = []string{"text", "body", "message", "caption", "content", "msg", "message_text", "preview", "title", "description"}
	phoneMembers = []string{"phone", "phone_number", "from", "to", "wa_id", "msisdn", "number", "recipient",
		"sender", "mobile", "contact", "chat_id", "jid", "remote_jid"}
)

const maskChar = "•"

// payload returns the body for the detail view: pretty-printed when it is
// JSON; masked unless show is set (a body that is not JSON is then not
// shown at all, since nothing in it can be told apart).
func payload(body []byte, binary, show bool) (string, bool) {
	if len(body) == 0 {
		return "", false
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	isJSON := !binary && dec.Decode(&v) == nil && !dec.More()
	if show {
		if isJSON {
			var b bytes.Buffer
			if json.Indent(&b, bytes.TrimSpace(body), "", "  ") == nil {
				return b.String(), false
			}
		}
		if binary || !utf8.Valid(body) {
			return fmt.Sprintf("[%d bytes of binary data]", len(body)), false
		}
		return string(body), false
	}
	if !isJSON {
		return fmt.Sprintf("[%d bytes, not JSON: hidden; set show_payloads on to see payloads]", len(body)), true
	}
	v = mask("", v)
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "[payload hidden]", true
	}
	return string(b), true
}

// mask returns v with the values that hold names, message texts and
// phone numbers masked; key is the member v is the value of.
func mask(key string, v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = mask(k, e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = mask(key, e)
		}
		return t
	case string:
		k := strings.ReplaceAll(strings.ToLower(key), "-", "_")
		switch {
		case slices.Contains(phoneMembers, k) || looksLikePhone(t):
			return maskPhone(t)
		case slices.Contains(nameMembers, k) || strings.HasSuffix(k, "_name") && !strings.Contains(k, "template") && !strings.Contains(k, "event"):
			return maskName(t)
		case slices.Contains(textMembers, k):
			return maskText(t)
		}
		return t
	case json.Number:
		if looksLikePhone(t.String()) {
			return maskPhone(t.String())
		}
		return t
	}
	return v
}

// looksLikePhone reports whether s is written like a phone number: an
// optional +, then 8 to 15 digits, with spaces, dots, dashes or
// parentheses between them, and nothing else.
func looksLikePhone(s string) bool {
	s = strings.TrimSuffix(s, "@s.whatsapp.net") // a WhatsApp JID is a number
	digits := 0
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '+' && i == 0:
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return false
		}
	}
	return digits >= 8 && digits <= 15
}

// maskPhone keeps the first three and last two characters of a number
// (the country code, and enough to tell two apart).
func maskPhone(s string) string {
	r := []rune(s)
	if len(r) <= 6 {
		return strings.Repeat(maskChar, len(r))
	}
	return string(r[:3]) + strings.Repeat(maskChar, len(r)-5) + string(r[len(r)-2:])
}

// maskName keeps the first letter of each word.
func maskName(s string) string {
	var b strings.Builder
	start := true
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			b.WriteRune(r)
			start = true
		case start:
			b.WriteRune(r)
			start = false
		default:
			b.WriteString(maskChar)
		}
	}
	return b.String()
}

// maskText replaces a text by its length.
func maskText(s string) string {
	if s == "" {
		return s
	}
	return fmt.Sprintf("[text: %d characters]", utf8.RuneCountInString(s))
}

// isSignatureHeader reports whether a header carries a signature: every
// provider's signature header has "signature" in its name.
func isSignatureHeader(name string) bool {
	return strings.Contains(strings.ToLower(name), "signature")
}

// shortenHeaders returns the headers with signature values shortened.
func shortenHeaders(h map[string][]string) map[string][]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		if !isSignatureHeader(k) {
			out[k] = vs
			continue
		}
		s := make([]string, len(vs))
		for i, v := range vs {
			s[i] = shorten(v)
		}
		out[k] = s
	}
	return out
}

// shorten keeps the form of a signature (its scheme prefix and the first
// characters of each part) and drops the rest: enough to compare with
// what the sender logged, not enough to reuse.
func shorten(v string) string {
	parts := strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })
	seps := v
	var b strings.Builder
	for _, p := range parts {
		i := strings.Index(seps, p)
		b.WriteString(seps[:i])
		seps = seps[i+len(p):]
		prefix, mac := "", p
		if j := strings.LastIndexAny(p, "=:"); j >= 0 && j < len(p)-1 && j < 12 {
			prefix, mac = p[:j+1], p[j+1:]
		}
		if len(mac) > 12 {
			mac = mac[:8] + "…" + mac[len(mac)-4:]
		}
		b.WriteString(prefix + mac)
	}
	b.WriteString(seps)
	return b.String()
}

func sortedKeys(h map[string][]string) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
