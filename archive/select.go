package archive

import (
	"errors"
	"time"

	"github.com/wagate/caddy-webhook/verify"
)

// A Selection is the events a replay sends, as Plan chose them: their
// ids, not their records. Each reads the records again, one at a time, so
// that a replay holds one body at a time however many events it sends.
type Selection struct {
	r       *Reader
	f       Filter // Verdicts nil
	all     bool
	pending map[eventKey]struct{} // the events not yet handed to Each's fn
	passed  map[string]struct{}   // request records a Passed outcome names
	warned  map[warning]bool      // what Plan reported to r.Warn
}

// eventKey names an event: one provider's event id.
type eventKey struct{ provider, id string }

// warning is one report to Reader.Warn.
type warning struct {
	file string
	line int
	msg  string
}

// Plan chooses the events a replay sends, reading the archive once and
// keeping their ids, not their records:
//
//   - by default, the verified events in f's range (Provider, Since,
//     Until, EventIDs; Verdicts is ignored) that no record anywhere in the
//     archive shows accepted: no 2xx outcome for the event id, neither for
//     that request nor for a later provider retry or an earlier replay,
//     and no request answered as a duplicate;
//   - with all, every verified event in the range.
//
// Verified events are request records verified, or verified and then
// refused for a dedupe store error (store_error), and not passed on to
// another delivery (Record.Passed: a retry answered in_flight or as a
// duplicate). Plan holds the ids of the events in the range, of their
// records, and, by default, of the events accepted anywhere in the
// provider's archive: memory grows with the number of records, not with
// their bodies.
func (r *Reader) Plan(f Filter, all bool) (*Selection, error) {
	f.Verdicts = nil
	s := &Selection{r: r, f: f, all: all, pending: map[eventKey]struct{}{}, passed: map[string]struct{}{}, warned: map[warning]bool{}}
	plan := *r
	plan.Warn = func(file string, line int, msg string) {
		s.warned[warning{file, line, msg}] = true
		r.warn(file, line, msg)
	}
	candidates := map[string]eventKey{} // deliverable request records in range
	held := map[eventKey]int{}          // how many candidates each event has
	accepted := map[eventKey]bool{}
	providers := map[string]string{} // one copy of each provider's name
	err := plan.Scan(Filter{Provider: f.Provider}, func(rec *Record) error {
		if rec.EventID == "" {
			return nil
		}
		k := eventKey{rec.Provider, rec.EventID}
		if p, ok := providers[k.provider]; ok {
			k.provider = p
		} else {
			providers[k.provider] = k.provider
		}
		if rec.Passed() {
			s.passed[rec.Ref] = struct{}{}
			if ck, ok := candidates[rec.Ref]; ok {
				delete(candidates, rec.Ref)
				held[ck]--
			}
		}
		switch {
		case rec.Accepted():
			accepted[k] = true
		case rec.Deliverable() && f.match(rec):
			candidates[rec.ID] = k
			held[k]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for k, n := range held {
		if n > 0 && (all || !accepted[k]) {
			s.pending[k] = struct{}{}
		}
	}
	return s, nil
}

// Len returns how many events the selection holds: Each hands fn as many,
// less those it finds accepted or gone.
func (s *Selection) Len() int { return len(s.pending) }

// Each reads the archive again and calls fn with the selection's events,
// one request record each (the first in the range), in the order Scan
// reads them: time order. Each record is read when its turn comes and
// dropped when fn returns, unless fn keeps it. An error from fn stops Each
// and is returned. Each spends the selection: a second call hands fn
// nothing.
//
// Each also returns how many selected events it did not hand to fn.
// accepted counts those that a record written since the Plan shows
// accepted before their turn came (unless the selection is of all the
// events). Scan reads an acceptance after the event it accepts unless
// their writers' clocks disagree, so this is rare: a replay racing a
// provider retry needs the dedupe store. gone counts those whose records
// are no longer in the archive: their files were deleted since the Plan.
// A warning Plan gave is not given again.
func (s *Selection) Each(fn func(*Record) error) (accepted, gone int, err error) {
	each := *s.r
	each.Warn = func(file string, line int, msg string) {
		if !s.warned[warning{file, line, msg}] { // Plan told it already
			s.r.warn(file, line, msg)
		}
	}
	err = each.Scan(Filter{Provider: s.f.Provider}, func(rec *Record) error {
		k := eventKey{rec.Provider, rec.EventID}
		if _, ok := s.pending[k]; !ok {
			return nil
		}
		if rec.Accepted() {
			if !s.all {
				delete(s.pending, k)
				accepted++
			}
			return nil
		}
		if !rec.Deliverable() || !s.f.match(rec) {
			return nil
		}
		if _, passed := s.passed[rec.ID]; passed {
			return nil
		}
		delete(s.pending, k)
		return fn(rec)
	})
	if err != nil {
		return accepted, 0, err
	}
	gone = len(s.pending)
	clear(s.pending)
	return accepted, gone, nil
}

// Select returns the events Plan chooses, as Each hands them, in one
// slice: every record is held at once, bodies included. A replay uses Plan
// and Each.
func (r *Reader) Select(f Filter, all bool) ([]*Record, error) {
	s, err := r.Plan(f, all)
	if err != nil {
		return nil, err
	}
	out := make([]*Record, 0, s.Len())
	_, _, err = s.Each(func(rec *Record) error {
		out = append(out, rec)
		return nil
	})
	return out, err
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
