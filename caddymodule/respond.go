package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wagate/caddy-webhook/verify"
)

// Short reasons for the rejects that verify/ does not produce. Responses
// and logs carry these, never a secret or a signature.
var (
	errMethod     = errors.New("webhook: method not allowed, use POST")
	errTooLarge   = errors.New("webhook: body too large")
	errUnreadable = errors.New("webhook: body could not be read")
	errStore      = errors.New("webhook: dedupe store unavailable, retry later")
	errInFlight   = errors.New("webhook: event is being delivered by another request, retry later")
)

// classify maps a verify error to an HTTP status and a metric reason.
func classify(err error) (int, string) {
	switch {
	case errors.Is(err, verify.ErrMalformedBody):
		return http.StatusBadRequest, "malformed_body" // before the timestamp sentinels it may also wrap
	case errors.Is(err, verify.ErrMissingEventID):
		return http.StatusBadRequest, "missing_event_id"
	case errors.Is(err, verify.ErrMissingSignature):
		return http.StatusUnauthorized, "missing_signature"
	case errors.Is(err, verify.ErrMalformedSignature):
		return http.StatusUnauthorized, "malformed_signature"
	case errors.Is(err, verify.ErrNoMatch):
		return http.StatusUnauthorized, "no_match"
	case errors.Is(err, verify.ErrMissingTimestamp):
		return http.StatusUnauthorized, "missing_timestamp"
	case errors.Is(err, verify.ErrMalformedTimestamp):
		return http.StatusUnauthorized, "malformed_timestamp"
	case errors.Is(err, verify.ErrTimestampTooOld):
		return http.StatusUnauthorized, "timestamp_too_old"
	case errors.Is(err, verify.ErrTimestampTooNew):
		return http.StatusUnauthorized, "timestamp_too_new"
	}
	return http.StatusBadRequest, "invalid"
}

// reject counts and logs a refused request and returns it to Caddy's
// error flow with a short reason.
func (h *Handler) reject(r *http.Request, status int, reason string, err error, eventID string) error {
	h.metrics.requests.WithLabelValues(h.verifier.Name(), "rejected").Inc()
	h.metrics.rejected.WithLabelValues(h.verifier.Name(), reason).Inc()
	h.traceVerdict(r, nil, "rejected", reason)
	h.logReject(r, reason, err, eventID, "")
	return caddyhttp.Error(status, shortError{reason: reason, err: err})
}

// shortError keeps the sentinel for errors.Is while its message is the
// reject's short reason.
type shortError struct {
	reason string
	err    error
}

func (e shortError) Error() string { return "webhook rejected: " + e.err.Error() }
func (e shortError) Unwrap() error { return e.err }

// duplicate answers an already delivered event with 200 and a small JSON
// body, without forwarding it: providers stop retrying on a 2xx.
func (h *Handler) duplicate(w http.ResponseWriter, r *http.Request, ev *verify.Event) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.webhook.duplicate", true)
	h.count.duplicate.Inc()
	h.log(zapcore.InfoLevel, r, "webhook duplicate", zap.String("event_id", ev.ID))
	out, err := json.Marshal(struct {
		Status  string `json:"status"`
		EventID string `json:"event_id"`
	}{"duplicate", ev.ID})
	if err != nil {
		return err
	}
	out = append(out, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(out)
	return err
}

func (h *Handler) log(level zapcore.Level, r *http.Request, msg string, fields ...zap.Field) {
	if c := h.logger.Check(level, msg); c != nil {
		ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
		c.Write(append(fields, zap.String("provider", h.verifier.Name()), zap.String("remote_ip", ip))...)
	}
}

func (h *Handler) logReject(r *http.Request, reason string, err error, eventID, note string) {
	fields := []zap.Field{zap.String("reason", reason), zap.String("error", err.Error())}
	if eventID != "" {
		fields = append(fields, zap.String("event_id", eventID))
	}
	if note != "" {
		fields = append(fields, zap.String("note", note))
	}
	h.log(zapcore.WarnLevel, r, "webhook rejected", fields...)
}

func (h *Handler) logStore(r *http.Request, op string, err error, eventID string) {
	h.log(zapcore.ErrorLevel, r, "webhook dedupe store error",
		zap.String("op", op), zap.String("event_id", eventID), zap.String("on_store_error", h.OnStoreError), zap.Error(err))
}

// stripForgeable removes every inbound header that the upstream could take
// for the gateway's own, except the provider's own headers (own, keyed by
// canonical name): every Webhook-* header (the gateway sets
// Webhook-Provider, Webhook-Event-Id and Webhook-Event-Type, and replays
// add Webhook-Replay) and every CloudEvents attribute header (Ce-*, which
// binary-mode receivers read as the event's attributes), in any spelling
// that an app may read as the same name (Webhook_Event_Id,
// Webhook.Event.Id: CGI, PHP and WSGI map '-', '_' and '.' to one
// variable; Caddy drops such names by default, but a server's
// expected_underscore_headers or expected_dot_headers lets them in).
func stripForgeable(h http.Header, own map[string]bool) {
	for name := range h {
		if forgeable(name) && !own[name] {
			delete(h, name)
		}
	}
}

// forgeable reports whether a header name is one the gateway owns.
func forgeable(name string) bool {
	return hasPrefixName(name, "ce-") || hasPrefixName(name, "webhook-")
}

// hasPrefixName reports whether a header name starts with a lower-case
// prefix ending in '-', case-insensitively and with '_' and '.' taken
// for '-'.
func hasPrefixName(name, prefix string) bool {
	return len(name) > len(prefix) && sameName(name[:len(prefix)], prefix)
}

// ownHeaders returns the headers the provider reads (canonical names),
// which stripForgeable keeps (Standard Webhooks' Webhook-Id, say). A
// provider header that the gateway sets itself (Webhook-Provider,
// Webhook-Event-Id, Webhook-Event-Type, Webhook-Replay) or a Ce-* header
// is refused: the upstream could not tell it from the gateway's.
func ownHeaders(v *verify.Verifier) (map[string]bool, error) {
	own := map[string]bool{}
	for _, name := range v.Headers() {
		if hasPrefixName(name, "ce-") || gatewaySets(name) {
			return nil, fmt.Errorf("header %s is the gateway's own: choose another", name)
		}
		own[http.CanonicalHeaderKey(name)] = true
	}
	return own, nil
}

// gatewaySets reports whether the gateway sets a header of this name, in
// any spelling an app reads as the same.
func gatewaySets(name string) bool {
	for _, own := range [...]string{"webhook-provider", "webhook-event-id", "webhook-event-type", "webhook-replay"} {
		if len(name) == len(own) && sameName(name, own) {
			return true
		}
	}
	return false
}

func separator(c byte) bool { return c == '-' || c == '_' || c == '.' }

// sameName compares a header name with a lower-case one, case-insensitively
// and with '_' and '.' taken for '-'.
func sameName(name, own string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if separator(c) {
			c = '-'
		} else if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != own[i] {
			return false
		}
	}
	return true
}
