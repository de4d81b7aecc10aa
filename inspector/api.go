package inspector

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wagate/caddy-webhook/archive"
)

// States of a row: what became of a request, its verdict and outcome
// together. The verdict filter of the list takes these, and the archive's
// verdicts (store_error).
const (
	StateVerified   = "verified"   // verified and forwarded; accepted, or not answered yet
	StateFailed     = "failed"     // forwarded and the upstream did not accept it, or a dedupe store error
	StateRejected   = "rejected"   // refused by the gateway
	StateDuplicate  = "duplicate"  // already delivered: answered 200, not forwarded
	StateInFlight   = "in_flight"  // being delivered by another request: answered 409
	StateUnverified = "unverified" // failed verification, forwarded with enforce off
)

// Row is one request in the list, with its outcome when there is one.
type Row struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Provider   string    `json:"provider"`
	EventID    string    `json:"event_id,omitempty"`
	EventType  string    `json:"event_type,omitempty"`
	Verdict    string    `json:"verdict"`
	Reason     string    `json:"reason,omitempty"`
	State      string    `json:"state"`
	Status     int       `json:"status,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMS *float64  `json:"duration_ms,omitempty"`
	Settled    string    `json:"settled,omitempty"`
}

// OutcomeEvent is an outcome as the stream sends it: the request it
// settles, and the row's new state.
type OutcomeEvent struct {
	Ref string `json:"ref"`
	// Verdict and State are set when the claim kept a verified event
	// from the upstream (duplicate, in_flight, store_error): they replace
	// the row's.
	Verdict    string   `json:"verdict,omitempty"`
	State      string   `json:"state,omitempty"`
	Provider   string   `json:"provider"`
	EventID    string   `json:"event_id,omitempty"`
	Status     int      `json:"status,omitempty"`
	Error      string   `json:"error,omitempty"`
	DurationMS *float64 `json:"duration_ms,omitempty"`
	Settled    string   `json:"settled,omitempty"`
	Replay     bool     `json:"replay,omitempty"`
}

func rowOf(rec *archive.Record) *Row {
	row := &Row{
		ID: rec.ID, Time: rec.Time, Provider: rec.Provider, EventID: rec.EventID, EventType: rec.EventType,
		Verdict: rec.Verdict, Reason: rec.Reason,
	}
	row.State = stateOf(row)
	return row
}

// settle applies an outcome record to the row it refers to.
func (row *Row) settle(o *archive.Record) {
	if o.Replay {
		return // a replay's outcome is not the gateway's answer
	}
	d := o.DurationMS
	row.Status, row.Error, row.DurationMS, row.Settled = o.Status, o.Error, &d, o.Settled
	if o.Verdict != "" {
		row.Verdict = o.Verdict // the claim kept the event from the upstream
	}
	row.State = stateOf(row)
}

// outcomeEvent is the stream's form of an outcome record.
func outcomeEvent(o *archive.Record) *OutcomeEvent {
	d := o.DurationMS
	e := &OutcomeEvent{Ref: o.Ref, Provider: o.Provider, EventID: o.EventID, Status: o.Status,
		Error: o.Error, DurationMS: &d, Settled: o.Settled, Replay: o.Replay}
	if o.Verdict != "" {
		e.Verdict, e.State = o.Verdict, stateOf(&Row{Verdict: o.Verdict})
	}
	return e
}

func stateOf(row *Row) string {
	switch row.Verdict {
	case archive.Rejected:
		return StateRejected
	case archive.Duplicate:
		return StateDuplicate
	case archive.InFlight:
		return StateInFlight
	case archive.StoreError:
		return StateFailed
	}
	forwarded := row.DurationMS != nil
	if forwarded && (row.Status < 200 || row.Status > 299) {
		return StateFailed
	}
	if row.Verdict == archive.Unverified {
		return StateUnverified
	}
	return StateVerified
}

// query is a parsed list request.
type query struct {
	provider string
	verdict  string
	q        string
	since    time.Time
	limit    int
	cursor   *cursor
}

// cursor names the last row of a page: the next page holds the rows
// before it, in (time, id) order.
type cursor struct {
	t  time.Time
	id string
}

func (c *cursor) String() string { return strconv.FormatInt(c.t.UnixNano(), 10) + "_" + c.id }

func parseCursor(s string) (*cursor, error) {
	ns, id, ok := strings.Cut(s, "_")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return nil, errors.New("cursor: not one this API returned")
	}
	return &cursor{t: time.Unix(0, n).UTC(), id: id}, nil
}

// before reports whether a row comes before the cursor, newest first.
func (c *cursor) after(row *Row) bool {
	if !row.Time.Equal(c.t) {
		return row.Time.Before(c.t)
	}
	return row.ID < c.id
}

var verdicts = []string{StateVerified, StateFailed, StateRejected, StateDuplicate, StateInFlight, StateUnverified, archive.StoreError}

func (in *Inspector) parseQuery(r *http.Request) (*query, error) {
	v := r.URL.Query()
	q := &query{provider: v.Get("provider"), verdict: v.Get("verdict"), q: strings.TrimSpace(v.Get("q")), limit: DefaultLimit}
	if q.verdict != "" && !slices.Contains(verdicts, q.verdict) {
		return nil, fmt.Errorf("verdict %q: use one of %s", q.verdict, strings.Join(verdicts, ", "))
	}
	if strings.ContainsAny(q.provider, "/\\") || q.provider == "." || q.provider == ".." {
		return nil, fmt.Errorf("provider %q: not a provider name", q.provider)
	}
	var err error
	if q.since, err = parseSince(v.Get("since"), in.o.Now()); err != nil {
		return nil, err
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("limit %q: a number from 1 to %d", s, MaxLimit)
		}
		q.limit = min(n, MaxLimit)
	}
	if s := v.Get("cursor"); s != "" {
		if q.cursor, err = parseCursor(s); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// parseSince reads since: a duration back from now (90m, 2h, 7d), or a
// time (RFC 3339); default DefaultSince.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return now.Add(-DefaultSince), nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since %q: a duration such as 2h or 7d, or an RFC 3339 time", s)
}

func (q *query) match(row *Row) bool {
	switch {
	case q.verdict != "" && row.State != q.verdict && (q.verdict != archive.StoreError || row.Verdict != q.verdict):
		return false
	case q.q != "" && !strings.Contains(strings.ToLower(row.EventID), strings.ToLower(q.q)) && row.ID != q.q:
		return false
	case q.cursor != nil && !q.cursor.after(row):
		return false
	}
	return true
}

// Page is the answer of the list.
type Page struct {
	Events []*Row `json:"events"`
	// Cursor fetches the next page (older rows); empty on the last.
	Cursor string `json:"cursor,omitempty"`
}

// settleHorizon is how long after a request its outcome may be written:
// a row waits this long in the scan for its outcome before the verdict
// filter, which needs the outcome, decides on it.
const settleHorizon = 10 * time.Minute

// List returns the newest rows that q selects. It reads the archive once,
// holding at most limit rows and the rows of the last settleHorizon.
func (in *Inspector) list(w http.ResponseWriter, r *http.Request) {
	q, err := in.parseQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := in.page(q)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the archive: "+err.Error())
		return
	}
	writeJSON(w, page)
}

func (in *Inspector) page(q *query) (*Page, error) {
	keep := q.limit + 1 // one more tells whether there is a next page
	var (
		pending []*Row              // rows waiting for their outcome, in time order
		byID    = map[string]*Row{} // pending and kept rows, for their outcomes
		kept    []*Row              // a ring of the newest rows that match
		next    int
	)
	decide := func(row *Row) {
		if !q.match(row) {
			delete(byID, row.ID)
			return
		}
		if len(kept) < keep {
			kept = append(kept, row)
			return
		}
		delete(byID, kept[next].ID)
		kept[next] = row
		next = (next + 1) % keep
	}
	err := in.reader.Scan(archive.Filter{Provider: q.provider, Since: q.since}, func(rec *archive.Record) error {
		for len(pending) > 0 && rec.Time.Sub(pending[0].Time) > settleHorizon {
			decide(pending[0])
			pending = pending[1:]
		}
		switch rec.Kind {
		case archive.KindRequest:
			row := rowOf(rec)
			pending = append(pending, row)
			byID[row.ID] = row
		case archive.KindOutcome:
			if row := byID[rec.Ref]; row != nil {
				row.settle(rec)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, row := range pending {
		decide(row)
	}
	rows := append(kept[next:len(kept):len(kept)], kept[:next]...)
	slices.SortFunc(rows, func(a, b *Row) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	p := &Page{Events: rows}
	if len(rows) > q.limit {
		p.Events = rows[:q.limit]
		last := p.Events[q.limit-1]
		p.Cursor = (&cursor{t: last.Time, id: last.ID}).String()
	}
	if p.Events == nil {
		p.Events = []*Row{}
	}
	return p, nil
}

// Stats are the counts of the last hour, per minute, oldest first.
type Stats struct {
	Since   time.Time      `json:"since"`
	Minutes []MinuteCounts `json:"minutes"`
	Total   MinuteCounts   `json:"total"`
	// Providers are the providers the archive holds records of.
	Providers []string `json:"providers"`
}

// MinuteCounts counts the rows of one minute by state.
type MinuteCounts struct {
	Time      time.Time `json:"time,omitzero"`
	Verified  int       `json:"verified"`
	Rejected  int       `json:"rejected"`
	Duplicate int       `json:"duplicate"`
	Failed    int       `json:"failed"`
}

func (c *MinuteCounts) add(state string) {
	switch state {
	case StateVerified:
		c.Verified++
	case StateRejected:
		c.Rejected++
	case StateDuplicate:
		c.Duplicate++
	case StateFailed:
		c.Failed++
	}
}

func (in *Inspector) stats(w http.ResponseWriter, r *http.Request) {
	provider := r.URL.Query().Get("provider")
	if strings.ContainsAny(provider, "/\\") || provider == "." || provider == ".." {
		writeError(w, http.StatusBadRequest, "provider: not a provider name")
		return
	}
	end := in.o.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	start := end.Add(-time.Hour)
	st := &Stats{Since: start, Minutes: make([]MinuteCounts, 60)}
	for i := range st.Minutes {
		st.Minutes[i].Time = start.Add(time.Duration(i) * time.Minute)
	}
	rows := map[string]*Row{}
	var order []*Row
	err := in.reader.Scan(archive.Filter{Provider: provider, Since: start}, func(rec *archive.Record) error {
		switch rec.Kind {
		case archive.KindRequest:
			row := rowOf(rec)
			rows[row.ID] = row
			order = append(order, row)
		case archive.KindOutcome:
			if row := rows[rec.Ref]; row != nil {
				row.settle(rec)
			}
		}
		return nil
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the archive: "+err.Error())
		return
	}
	st.Providers = []string{}
	if entries, err := os.ReadDir(in.o.Dir); err == nil {
		for _, e := range entries {
			if e.IsDir() {
				st.Providers = append(st.Providers, e.Name())
			}
		}
	}
	for _, row := range order {
		i := int(row.Time.Sub(start) / time.Minute)
		if i < 0 || i >= len(st.Minutes) {
			continue
		}
		st.Minutes[i].add(row.State)
		st.Total.add(row.State)
	}
	writeJSON(w, st)
}

// Detail is one request record with its outcome and what explains it.
type Detail struct {
	Row
	Route   string              `json:"route,omitempty"`
	Remote  string              `json:"remote,omitempty"`
	Method  string              `json:"method,omitempty"`
	Path    string              `json:"path,omitempty"`
	Format  string              `json:"format,omitempty"`
	Headers map[string][]string `json:"headers,omitempty"`
	// Diagnosis explains the verdict.
	Diagnosis Diagnosis `json:"diagnosis"`
	// Payload is the body, pretty-printed when it is JSON, masked unless
	// show_payloads is on.
	Payload       string `json:"payload"`
	PayloadMasked bool   `json:"payload_masked"`
	// Outcome is the upstream's answer, when the request was forwarded.
	Outcome *OutcomeEvent `json:"outcome,omitempty"`
	// Commands are the caddy webhook commands for this record: replay
	// (verified events) and the check of a reject.
	Commands []string `json:"commands,omitempty"`
}

// Diagnosis is what the archive says about why a request got its verdict.
type Diagnosis struct {
	Reason      string `json:"reason,omitempty"`
	Explanation string `json:"explanation"`
	// Secret says which configured secret matched: "secret 1 of 2", or
	// "none of 2" for a signature that matched none.
	Secret string `json:"secret,omitempty"`
	// Timestamp is the signed time the request carried, when recorded;
	// SkewSeconds its distance from the gateway's clock when the request
	// arrived (positive: in the past); WindowSeconds the window it was
	// held to.
	Timestamp     *time.Time `json:"timestamp,omitempty"`
	SkewSeconds   *float64   `json:"skew_seconds,omitempty"`
	WindowSeconds float64    `json:"window_seconds,omitempty"`
	// BodySize and BodySHA256 describe the body as received (the hash
	// only when the whole body was archived).
	BodySize      int    `json:"body_size"`
	BodySHA256    string `json:"body_sha256,omitempty"`
	BodyArchived  bool   `json:"body_archived"`
	BodyTruncated bool   `json:"body_truncated,omitempty"`
	// Signature is the signature header that was read and its value,
	// shortened.
	SignatureHeader string `json:"signature_header,omitempty"`
	Signature       string `json:"signature,omitempty"`
	// Form is the signature form the headers were in, by the provider's
	// name for it.
	Form string `json:"form,omitempty"`
}

func (in *Inspector) detail(w http.ResponseWriter, r *http.Request, id string) {
	if id == "" || len(id) > 128 {
		writeError(w, http.StatusBadRequest, "record id: missing or too long")
		return
	}
	rec, err := in.reader.Find(id)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the archive: "+err.Error())
		return
	}
	if rec != nil && rec.Kind == archive.KindOutcome {
		rec, err = in.reader.Find(rec.Ref) // the request this outcome settles
		if err != nil {
			writeError(w, http.StatusInternalServerError, "reading the archive: "+err.Error())
			return
		}
	}
	if rec == nil {
		writeError(w, http.StatusNotFound, "no record "+strconv.Quote(id)+" in the archive")
		return
	}
	d := &Detail{
		Row: *rowOf(rec), Route: rec.Route, Remote: rec.Remote, Method: rec.Method, Path: rec.Path, Format: rec.Format,
		Headers: shortenHeaders(rec.Headers),
	}
	// the outcome follows its request
	errFound := errors.New("found")
	err = in.reader.Scan(archive.Filter{Provider: rec.Provider, Since: rec.Time}, func(o *archive.Record) error {
		if o.Kind == archive.KindOutcome && o.Ref == rec.ID && !o.Replay {
			d.Row.settle(o)
			d.Outcome = outcomeEvent(o)
			if o.Verdict != "" {
				rec.Verdict = o.Verdict // for the diagnosis
			}
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		writeError(w, http.StatusInternalServerError, "reading the archive: "+err.Error())
		return
	}
	body := rec.BodyBytes()
	d.Diagnosis = diagnose(rec, body)
	d.Payload, d.PayloadMasked = payload(body, rec.BodyBase64 != nil, in.o.ShowPayloads)
	d.Commands = in.commands(rec)
	writeJSON(w, d)
}

// diagnose gathers what the record says about its verdict.
func diagnose(rec *archive.Record, body []byte) Diagnosis {
	dg := Diagnosis{Reason: rec.Reason, Explanation: explain(rec)}
	switch {
	case rec.Secret != nil && rec.Secrets > 0:
		dg.Secret = fmt.Sprintf("secret %d of %d", *rec.Secret+1, rec.Secrets)
	case rec.Secret != nil:
		dg.Secret = fmt.Sprintf("secret %d", *rec.Secret+1)
	case rec.Reason == "no_match" && rec.Secrets > 0:
		dg.Secret = fmt.Sprintf("none of %d", rec.Secrets)
	case rec.Reason == "no_match":
		dg.Secret = "none"
	}
	if rec.Timestamp != nil {
		t := *rec.Timestamp
		dg.Timestamp = &t
		skew := rec.Time.Sub(t).Seconds()
		dg.SkewSeconds = &skew
	}
	dg.WindowSeconds = float64(rec.WindowS)
	dg.BodySize = len(body)
	if rec.BodySize > 0 {
		dg.BodySize = rec.BodySize
	}
	dg.BodyArchived = len(body) > 0
	dg.BodyTruncated = rec.BodyTruncated
	if len(body) > 0 && !rec.BodyTruncated {
		sum := sha256.Sum256(body)
		dg.BodySHA256 = hex.EncodeToString(sum[:])
	}
	dg.Form = rec.Form
	for _, name := range sortedKeys(rec.Headers) {
		if isSignatureHeader(name) && len(rec.Headers[name]) > 0 {
			dg.SignatureHeader = name
			dg.Signature = shorten(rec.Headers[name][0])
			break
		}
	}
	return dg
}

// explanations say in a sentence what a reject reason means.
var explanations = map[string]string{
	"method_not_allowed":  "The request was not a POST.",
	"body_too_large":      "The body was larger than max_body.",
	"body_unreadable":     "The body could not be read: the client went away or sent a broken body.",
	"missing_signature":   "The request carried no signature header of this provider (or a signed header was missing).",
	"malformed_signature": "The signature header was there but not in a form the provider writes.",
	"no_match":            "The signature matched none of the configured secrets: a wrong or rotated secret, or a body changed on the way (a proxy, a parser re-encoding JSON).",
	"missing_timestamp":   "The signed timestamp was missing.",
	"malformed_timestamp": "The timestamp was not a time.",
	"timestamp_too_old":   "The timestamp was older than its window: a replay, a clock behind, or a retry past max_age.",
	"timestamp_too_new":   "The timestamp was ahead of the gateway's clock by more than future_skew: a clock ahead.",
	"malformed_body":      "The body was not the provider's JSON.",
	"missing_event_id":    "The event had no usable id.",
	"store_unavailable":   "The dedupe store failed and on_store_error is closed: answered 503, the provider retries.",
}

func explain(rec *archive.Record) string {
	switch rec.Verdict {
	case archive.Verified:
		return "Signature and timestamps verified; the event was forwarded."
	case archive.Duplicate:
		return "Verified, but this event id was already delivered: answered 200 and not forwarded."
	case archive.InFlight:
		return "Verified, but another request was delivering this event: answered 409, the provider retries."
	case archive.StoreError:
		return explanations["store_unavailable"]
	case archive.Unverified:
		return "Failed verification (" + rec.Reason + ") but forwarded: enforce is off."
	}
	if e, ok := explanations[rec.Reason]; ok {
		return e
	}
	return "Rejected: " + rec.Reason + "."
}

// commands returns the caddy webhook commands that act on the record.
func (in *Inspector) commands(rec *archive.Record) []string {
	dir := shellQuote(in.o.Dir)
	var out []string
	if rec.Deliverable() {
		out = append(out, fmt.Sprintf("caddy webhook replay --archive %s --to URL --provider %s --event-id %s",
			dir, shellQuote(rec.Provider), shellQuote(rec.EventID)))
	}
	out = append(out, fmt.Sprintf("caddy webhook archive show --archive %s %s", dir, shellQuote(rec.ID)))
	if rec.Verdict == archive.Rejected && len(rec.BodyBytes()) > 0 {
		out = append(out, fmt.Sprintf("caddy webhook archive show --archive %s %s | caddy webhook check --provider %s --secret \"$SECRET\" --at %s --file -",
			dir, shellQuote(rec.ID), shellQuote(rec.Provider), rec.Time.UTC().Format(time.RFC3339)))
	}
	return out
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
