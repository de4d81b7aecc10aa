package caddymodule

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/wagate/caddy-webhook/dedupe"
	"github.com/wagate/caddy-webhook/verify"
)

// OpenTelemetry: when Caddy's tracing handler runs before webhook_verify,
// the request's span gets these attributes:
//
//	webhook.provider    the provider's name
//	webhook.event_id    the event id, once verified
//	webhook.event_type  the canonical event type, once verified
//	webhook.verdict     verified, rejected, duplicate, in_flight,
//	                    store_error or unverified (as in the archive)
//	webhook.reason      a reject's reason (as in rejected_total)
//
// and the span events webhook.claim (attribute webhook.claim: claimed,
// in_flight, done or error), webhook.commit and webhook.release (with
// webhook.error when the store failed). Without tracing the span is a
// no-op and none of this costs more than a check.

// traceVerdict adds the request's verdict to its span.
func (h *Handler) traceVerdict(r *http.Request, ev *verify.Event, verdict, reason string) {
	span := trace.SpanFromContext(r.Context())
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, attribute.String("webhook.provider", h.verifier.Name()), attribute.String("webhook.verdict", verdict))
	if reason != "" {
		attrs = append(attrs, attribute.String("webhook.reason", reason))
	}
	if ev != nil {
		attrs = append(attrs, attribute.String("webhook.event_id", ev.ID), attribute.String("webhook.event_type", ev.Type))
	}
	span.SetAttributes(attrs...)
}

// traceStore adds a span event for a dedupe store operation: claim,
// commit or release.
func traceStore(r *http.Request, op string, claim dedupe.Claim, err error) {
	span := trace.SpanFromContext(r.Context())
	if !span.IsRecording() {
		return
	}
	var attrs []attribute.KeyValue
	if op == "claim" {
		outcome := "error"
		if err == nil {
			switch claim.Outcome {
			case dedupe.Claimed:
				outcome = "claimed"
			case dedupe.InFlight:
				outcome = "in_flight"
			case dedupe.Done:
				outcome = "done"
			}
		}
		attrs = append(attrs, attribute.String("webhook.claim", outcome))
	}
	if err != nil {
		attrs = append(attrs, attribute.String("webhook.error", err.Error()))
	}
	span.AddEvent("webhook."+op, trace.WithAttributes(attrs...))
}
