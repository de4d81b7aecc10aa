package archive

import (
	"errors"
	"slices"
	"time"

	"github.com/wagate/caddy-webhook/verify"
)

// Select returns the events a replay sends, one request record each (the
// first in f's range), in time order:
//
//   - by default, the verified events in f's range (Provider, Since,
//     Until, EventIDs; Verdicts is ignored) that no record anywhere in the
//     archive shows accepted: no 2xx outcome for the event id, neither for
//     that request nor for a later provider retry or an earlier replay,
//     and no request answered as a duplicate;
//   - with all, every verified event in the range.
//
// Verified events are request records verified, or verified and then
// refused for a dedupe store error (store_error).
func (r *Reader) Select(f Filter, all bool) ([]*Record, error) {
	type key struct{ provider, id string }
	first := map[key]*Record{}
	accepted := map[key]bool{}
	var order []key
	err := r.Scan(Filter{Provider: f.Provider}, func(rec *Record) error {
		k := key{rec.Provider, rec.EventID}
		if rec.Accepted() && rec.EventID != "" {
			accepted[k] = true
			if !all {
				delete(first, k) // its body need not be held any longer
			}
			return nil
		}
		if !rec.Deliverable() || (!all && accepted[k]) {
			return nil
		}
		sel := f
		sel.Verdicts = nil
		if _, seen := first[k]; seen || !sel.match(rec) {
			return nil
		}
		first[k] = rec
		order = append(order, k)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, k := range order {
		if rec, ok := first[k]; ok && (all || !accepted[k]) {
			out = append(out, rec)
			delete(first, k) // an id selected again after a delete is listed once
		}
	}
	slices.SortStableFunc(out, func(a, b *Record) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// ErrNoCloudEvent: the record has no CloudEvent head to rebuild the event
// from (it was not verified).
var ErrNoCloudEvent = errors.New("archive: the record holds no cloudevent head")

// Forwarded returns the body the gateway forwarded, or would have, for the
// record in format (cloudevents or raw; "" is the record's own), and its
// content type ("" for raw: the archived Content-Type applies).
func (r *Record) Forwarded(format string) (body []byte, contentType string, err error) {
	if format == "" {
		format = r.Format
	}
	if format != "cloudevents" {
		return r.BodyBytes(), "", nil
	}
	if r.CEHead == "" {
		return nil, "", ErrNoCloudEvent
	}
	payload := r.BodyBytes()
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(payload) > 0 && isSpace(payload[0]) {
		payload = payload[1:]
	}
	for len(payload) > 0 && isSpace(payload[len(payload)-1]) {
		payload = payload[:len(payload)-1]
	}
	out := make([]byte, 0, len(r.CEHead)+len(payload)+len(verify.CloudEventTail))
	out = append(out, r.CEHead...)
	out = append(out, payload...)
	out = append(out, verify.CloudEventTail...)
	return out, verify.CloudEventContentType, nil
}

// DurationOf returns an outcome record's duration.
func (r *Record) DurationOf() time.Duration {
	return time.Duration(r.DurationMS * float64(time.Millisecond))
}
