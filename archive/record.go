// Package archive keeps every webhook request the gateway answers in plain
// files, so that an event is never lost past the provider's last retry and
// can be replayed later, with no database. It imports nothing from Caddy.
//
// # Files
//
// An archive is a directory with one subdirectory per provider. Each
// gateway instance writes its own file an hour into it:
//
//	<dir>/<provider>/<YYYY-MM-DDTHH>Z.<instance>.jsonl
//
// The hour is UTC. The instance is the host name and a random 12-hex
// suffix chosen when the Writer opens (Options.Instance replaces it), so
// several gateways may share one volume and a restarted process never
// appends to a file another wrote. Directories are mode 0700, files 0600.
//
// # Records
//
// Files are JSON Lines: one record a line, each written whole (records
// written concurrently share one write(2)).
// A request record describes a request the gateway answered:
//
//	{"kind":"request","verdict":"verified","id":"3fa0c1d2e4b5-17",
//	 "time":"2026-05-01T13:04:05.123456789Z","provider":"wazera",
//	 "event_id":"evt_1","event_type":"message.received","secret":0,
//	 "format":"cloudevents","route":"example.com","remote":"203.0.113.7:50312",
//	 "method":"POST","host":"example.com","path":"/wazera",
//	 "headers":{"Content-Type":["application/json"],"X-Wazera-Signature":["..."]},
//	 "body":{"id":"evt_1",...},
//	 "ce_head":{"specversion":"1.0","id":"evt_1",...,"data":{...,"payload":null}}}
//
// secrets is how many secrets were configured; timestamp is the signed
// time the request carried and window_s the window (seconds) it was held
// to, when they were read: they tell a wrong secret from a clock off.
//
// verdict is one of verified, rejected (with "reason"), duplicate,
// in_flight, store_error, unverified. Authorization, Proxy-Authorization
// and Cookie are redacted; signature headers are kept, so a rejected
// request can be checked later. secret is the position of the configured
// secret that matched, never the secret. "body" is the body as a JSON
// string when it is valid UTF-8 ("body_base64" otherwise), and
// "body_size" gives the original size when the body was cut
// ("body_truncated"). A verified event's body, which the verifier parsed
// whole, is the JSON value itself instead: nothing to escape, and jq reads
// into it. That is so when it reads back byte for byte and stays one line
// for every reader (see rawJSON): no line break, U+2028 or U+2029, no
// whitespace around it, fewer than 250 brackets. "ce_head" is the
// CloudEvent the gateway forwarded, with null for its payload (a JSON
// string of it up to "payload": where it would not stay one line, and in
// records written before), so that a replay rebuilds the event without
// the secret: the head, the body without surrounding whitespace, then
// "}}". A reader that takes "body" and "ce_head" only as strings, as this
// package's did before, refuses the newer records with an error, rather
// than taking their bodies for empty.
//
// An outcome record follows when the request was forwarded (or when the
// claim kept a verified event from the upstream, below):
//
//	{"kind":"outcome","id":"3fa0c1d2e4b5-18","ref":"3fa0c1d2e4b5-17",
//	 "time":"...","provider":"wazera","event_id":"evt_1","status":200,
//	 "duration_ms":12.5,"settled":"committed"}
//
// A verified event's request record is written before the event is
// claimed in the dedupe store, so that a gateway killed at any point after
// the claim leaves it in the archive. When the claim keeps the event from
// the upstream, the outcome says why with a verdict of its own, which
// replaces the request's: duplicate (status 200, the gateway's answer,
// settled done), in_flight (409) or store_error (503):
//
//	{"kind":"outcome","verdict":"duplicate","id":"3fa0c1d2e4b5-20",
//	 "ref":"3fa0c1d2e4b5-19","time":"...","provider":"wazera",
//	 "event_id":"evt_1","status":200,"duration_ms":0.4,"settled":"done"}
//
// Archives written before this kept those verdicts on the request record
// itself; readers take both. A request whose outcome is in_flight or
// duplicate passed its event on to the delivery that holds it (Passed):
// a replay sends that delivery's record, not this one.
//
// status is the upstream's answer (0 with "error" when it gave none);
// settled is committed, released, none, or done (a replay found the event
// already delivered in the dedupe store and sent nothing); "replay":true
// marks the outcomes that caddy webhook replay appends.
//
// Record ids are the instance's random suffix and a sequence number: unique
// across instances and stable, the name `caddy webhook archive show` takes.
package archive

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wagate/caddy-webhook/verify"
)

// Verdicts of a request record.
const (
	Verified   = "verified"
	Rejected   = "rejected"
	Duplicate  = "duplicate"
	InFlight   = "in_flight"
	StoreError = "store_error"
	Unverified = "unverified"
)

// Settled values of an outcome record.
const (
	Committed = "committed"
	Released  = "released"
	None      = "none"
	Done      = "done"
)

// Kinds of record.
const (
	KindRequest = "request"
	KindOutcome = "outcome"
)

// MaxRejectedBody is the most of a rejected request's body kept with
// RejectedBody.
const MaxRejectedBody = 64 << 10

// Redacted replaces the values of the headers that carry credentials.
const Redacted = "[redacted]"

// redacted are the headers whose values are never written.
var redacted = map[string]bool{"Authorization": true, "Proxy-Authorization": true, "Cookie": true}

// Request is what WriteRequest records about one answered request.
type Request struct {
	Route  string // which route answered: the site's host, say
	Remote string // the client's address
	Method string
	Host   string
	Path   string      // the request URI, query included
	Header http.Header // as received; redacted when written
	Body   []byte
	// BodyJSON says that Body is one JSON value the caller parsed whole
	// (a verified event's): the record then holds it as it is, where it
	// reads back the same (see the package doc).
	BodyJSON bool
	// Verdict is one of Verified, Rejected, Duplicate, InFlight,
	// StoreError, Unverified; Reason says why a request was rejected.
	Verdict string
	Reason  string
	// EventID and EventType are set once the request verified.
	EventID   string
	EventType string
	// Secret is the position of the secret that verified the request, or
	// -1 when none did.
	Secret int
	// Format is the forwarded format: cloudevents or raw.
	Format string
	// CloudEventHead is the CloudEvent up to its payload, for a replay:
	// what verify.Event.AppendCloudEventHead returns, which ends with
	// "payload": and holds no line break.
	CloudEventHead []byte
	// Secrets is how many secrets were configured (so that a reject can
	// say "none of 2"); 0 leaves it out.
	Secrets int
	// Form names the signature form the request's headers were in (the
	// provider's form names, as `caddy webhook sign --form` takes them).
	Form string
	// Timestamp is the signed time the request carried, when it was
	// read, and Window the window it was held to; zero leaves them out.
	Timestamp time.Time
	Window    time.Duration
}

// Outcome is what WriteOutcome records once the upstream answered.
type Outcome struct {
	// Verdict, when set, replaces the request record's: a verified
	// event's record is written before its claim, and the claim may find
	// it Duplicate, InFlight or fail (StoreError); Status is then the
	// gateway's own answer, and the event was not forwarded.
	Verdict  string
	Status   int    // the upstream's status; 0 when it gave none
	Error    string // why it gave none, or the handler's error
	Duration time.Duration
	Settled  string // Committed, Released, None or Done
	Replay   bool   // sent by caddy webhook replay
}

// Ref names a request record, for the outcome that follows it. The zero
// Ref names none: WriteOutcome ignores it.
type Ref struct {
	ID      string
	EventID string
}

// Record is one line of an archive file, of either kind, as read back.
type Record struct {
	Kind    string `json:"kind"`
	Verdict string `json:"verdict,omitempty"`
	ID      string `json:"id"`
	Ref     string `json:"ref,omitempty"`
	// Time is when the record was written.
	Time      time.Time `json:"time"`
	Provider  string    `json:"provider"`
	EventID   string    `json:"event_id,omitempty"`
	EventType string    `json:"event_type,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Secret    *int      `json:"secret,omitempty"`
	Format    string    `json:"format,omitempty"`
	// Secrets, Timestamp and WindowS (seconds) diagnose a request: how
	// many secrets were configured, the signed time and its window.
	Secrets   int        `json:"secrets,omitempty"`
	Form      string     `json:"form,omitempty"`
	Timestamp *time.Time `json:"timestamp,omitempty"`
	WindowS   int64      `json:"window_s,omitempty"`

	Route   string      `json:"route,omitempty"`
	Remote  string      `json:"remote,omitempty"`
	Method  string      `json:"method,omitempty"`
	Host    string      `json:"host,omitempty"`
	Path    string      `json:"path,omitempty"`
	Headers http.Header `json:"headers,omitempty"`
	// Body is the body as received, and CEHead the CloudEvent up to its
	// payload; the reader decodes them from RawBody and RawCEHead, in
	// either of their forms (see the package doc), and clears those.
	Body          string          `json:"-"`
	CEHead        string          `json:"-"`
	RawBody       json.RawMessage `json:"body,omitempty"`
	RawCEHead     json.RawMessage `json:"ce_head,omitempty"`
	BodyBase64    []byte          `json:"body_base64,omitempty"`
	BodySize      int             `json:"body_size,omitempty"`
	BodyTruncated bool            `json:"body_truncated,omitempty"`

	Status     int     `json:"status,omitempty"`
	Error      string  `json:"error,omitempty"`
	DurationMS float64 `json:"duration_ms,omitempty"`
	Settled    string  `json:"settled,omitempty"`
	Replay     bool    `json:"replay,omitempty"`

	// File and Line locate the record; set by the reader.
	File string `json:"-"`
	Line int    `json:"-"`
}

// BodyBytes returns the archived body.
func (r *Record) BodyBytes() []byte {
	if r.BodyBase64 != nil {
		return r.BodyBase64
	}
	return []byte(r.Body)
}

// Accepted reports whether the record shows its event delivered: a 2xx
// outcome, a replay that found it done in the dedupe store, or a request
// answered as a duplicate (the dedupe store marks an event done only after
// a 2xx).
func (r *Record) Accepted() bool {
	switch r.Kind {
	case KindOutcome:
		return (r.Status >= 200 && r.Status < 300) || r.Settled == Done
	case KindRequest:
		return r.Verdict == Duplicate
	}
	return false
}

// Deliverable reports whether the record is a verified event the gateway
// forwarded or should have: verified, or verified and then refused for a
// dedupe store error. These are what a replay can send, unless a Passed
// outcome names the record.
func (r *Record) Deliverable() bool {
	return r.Kind == KindRequest && (r.Verdict == Verified || r.Verdict == StoreError) && r.EventID != ""
}

// Passed reports whether the record is an outcome saying that the claim
// kept its request from the upstream because another delivery holds the
// event (in_flight) or made it (duplicate). That request is then not one
// to replay: the delivery that holds the event has its own record, which
// is replayed if that delivery fails. A store error passes on nothing:
// its request stays deliverable.
func (r *Record) Passed() bool {
	return r.Kind == KindOutcome && (r.Verdict == InFlight || r.Verdict == Duplicate)
}

// valid reports whether a decoded line is a record at all.
func (r *Record) valid() bool {
	if r.ID == "" || r.Provider == "" || r.Time.IsZero() {
		return false
	}
	switch r.Kind {
	case KindRequest:
		return r.Verdict != ""
	case KindOutcome:
		return r.Ref != ""
	}
	return false
}

// appendRequest appends a request record, with its newline.
func appendRequest(b []byte, id string, t time.Time, provider string, q *Request, body []byte, size int) []byte {
	b = append(b, `{"kind":"request","verdict":`...)
	b = verify.AppendJSONString(b, q.Verdict)
	b = appendHead(b, id, t, provider, q.EventID)
	if q.EventType != "" {
		b = append(b, `,"event_type":`...)
		b = verify.AppendJSONString(b, q.EventType)
	}
	if q.Reason != "" {
		b = append(b, `,"reason":`...)
		b = verify.AppendJSONString(b, q.Reason)
	}
	if q.Secret >= 0 && (q.Verdict != Rejected && q.Verdict != Unverified) {
		b = append(b, `,"secret":`...)
		b = strconv.AppendInt(b, int64(q.Secret), 10)
	}
	if q.Secrets > 0 {
		b = append(b, `,"secrets":`...)
		b = strconv.AppendInt(b, int64(q.Secrets), 10)
	}
	if !q.Timestamp.IsZero() {
		b = append(b, `,"timestamp":"`...)
		b = q.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if q.Window > 0 {
		b = append(b, `,"window_s":`...)
		b = strconv.AppendInt(b, int64(q.Window/time.Second), 10)
	}
	for _, f := range [...]struct{ k, v string }{
		{`,"form":`, q.Form}, {`,"format":`, q.Format}, {`,"route":`, q.Route}, {`,"remote":`, q.Remote},
		{`,"method":`, q.Method}, {`,"host":`, q.Host}, {`,"path":`, q.Path},
	} {
		if f.v != "" {
			b = append(b, f.k...)
			b = verify.AppendJSONString(b, f.v)
		}
	}
	if len(q.Header) > 0 {
		b = append(b, `,"headers":{`...)
		var scratch [32]string
		keys := scratch[:0]
		for k := range q.Header {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = verify.AppendJSONString(b, k)
			b = append(b, ":["...)
			for j, v := range q.Header[k] {
				if j > 0 {
					b = append(b, ',')
				}
				if redacted[k] {
					v = Redacted
				}
				b = verify.AppendJSONString(b, v)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	if len(body) > 0 {
		if q.BodyJSON && size == len(body) && rawJSON(body) {
			// a parsed JSON value: embedded as it is, with no escaping
			b = append(b, `,"body":`...)
			b = append(b, body...)
		} else if utf8.Valid(body) {
			b = append(b, `,"body":`...)
			b = verify.AppendJSONString(b, body)
		} else {
			b = append(b, `,"body_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, body)
			b = append(b, '"')
		}
	}
	if size > len(body) {
		b = append(b, `,"body_size":`...)
		b = strconv.AppendInt(b, int64(size), 10)
		b = append(b, `,"body_truncated":true`...)
	}
	if h := q.CloudEventHead; len(h) > 0 {
		b = append(b, `,"ce_head":`...)
		if bytes.HasSuffix(h, []byte(`"payload":`)) && oneLine(h) {
			// the CloudEvent with a null payload: JSON as it is
			b = append(append(append(b, h...), nullPayload...), verify.CloudEventTail...)
		} else {
			b = verify.AppendJSONString(b, h)
		}
	}
	return append(b, "}\n"...)
}

// nullPayload stands for the payload in a "ce_head" kept as a CloudEvent.
const nullPayload = "null"

// rawJSON reports whether body, a JSON value, can be embedded in a record
// as it is, read back the same, and read by common JSON Lines tools:
//   - it is one line (oneLine);
//   - no whitespace before or after it (a JSON reader drops that);
//   - fewer than maxRawNesting brackets, which bound its depth: jq before
//     1.8 refuses JSON nested deeper than 256 levels, and stops reading
//     the file at such a line; encoding/json refuses 10,000 (the
//     verifier's limit), a level more than the body's own in a record.
func rawJSON(body []byte) bool {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	return !isSpace(body[0]) && !isSpace(body[len(body)-1]) && oneLine(body) &&
		bytes.Count(body, []byte("{"))+bytes.Count(body, []byte("[")) < maxRawNesting
}

const maxRawNesting = 250

// oneLine reports whether b, written as it is, stays on one line for
// every reader: no line feed or carriage return, and no U+2028 or U+2029,
// which JavaScript and Python's splitlines take for line ends (escaped
// strings escape them, see verify.AppendJSONString).
func oneLine(b []byte) bool {
	return bytes.IndexByte(b, '\n') < 0 && bytes.IndexByte(b, '\r') < 0 &&
		!bytes.Contains(b, []byte("\u2028")) && !bytes.Contains(b, []byte("\u2029"))
}

// unpack decodes RawBody and RawCEHead into Body and CEHead: each is a
// JSON string, or JSON as it is (a body, or a CloudEvent with a null
// payload for the head). A head of another shape is an error.
func (r *Record) unpack() error {
	if _, err := stringOrJSON(r.RawBody, &r.Body); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	asJSON, err := stringOrJSON(r.RawCEHead, &r.CEHead)
	if err != nil {
		return fmt.Errorf("ce_head: %w", err)
	}
	if asJSON {
		head, ok := strings.CutSuffix(r.CEHead, nullPayload+verify.CloudEventTail)
		if !ok || !strings.HasSuffix(head, `"payload":`) {
			return errors.New("ce_head: not a CloudEvent with a null payload")
		}
		r.CEHead = head
	}
	r.RawBody, r.RawCEHead = nil, nil
	return nil
}

// stringOrJSON sets *s to v's text when v is a JSON string, and to v as it
// is when v is another JSON value (asJSON); null and nothing leave *s as
// it is.
func stringOrJSON(v json.RawMessage, s *string) (asJSON bool, err error) {
	switch {
	case len(v) == 0 || string(v) == "null":
		return false, nil
	case v[0] == '"':
		return false, json.Unmarshal(v, s)
	}
	*s = string(v)
	return true, nil
}

// appendOutcome appends an outcome record, with its newline.
func appendOutcome(b []byte, id string, t time.Time, provider string, ref Ref, o *Outcome) []byte {
	b = append(b, `{"kind":"outcome"`...)
	if o.Verdict != "" {
		b = append(b, `,"verdict":`...)
		b = verify.AppendJSONString(b, o.Verdict)
	}
	b = appendHead(b, id, t, provider, ref.EventID)
	b = append(b, `,"ref":`...)
	b = verify.AppendJSONString(b, ref.ID)
	if o.Status != 0 {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(o.Status), 10)
	}
	if o.Error != "" {
		b = append(b, `,"error":`...)
		b = verify.AppendJSONString(b, o.Error)
	}
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(o.Duration.Microseconds())/1000, 'f', -1, 64)
	if o.Settled != "" {
		b = append(b, `,"settled":`...)
		b = verify.AppendJSONString(b, o.Settled)
	}
	if o.Replay {
		b = append(b, `,"replay":true`...)
	}
	return append(b, "}\n"...)
}

// appendHead appends the fields every record has, after its first.
func appendHead(b []byte, id string, t time.Time, provider, eventID string) []byte {
	b = append(b, `,"id":`...)
	b = verify.AppendJSONString(b, id)
	b = append(b, `,"time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","provider":`...)
	b = verify.AppendJSONString(b, provider)
	if eventID != "" {
		b = append(b, `,"event_id":`...)
		b = verify.AppendJSONString(b, eventID)
	}
	return b
}
