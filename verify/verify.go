// Package verify proves that an inbound webhook came from its provider and
// turns it into one normalised event.
//
// For each provider it checks the HMAC signature over the raw body (and over
// the signed id and timestamp where the scheme has them), holds timestamps to
// their window, derives a stable event id and maps the provider's payload onto
// a CloudEvents 1.0 event. It imports nothing from Caddy.
//
// A Verifier is built once from configuration and is safe for concurrent use:
//
//	v, err := verify.New(verify.Wazera, verify.Options{Secrets: []string{secret}})
//	ev, err := v.Verify(r.Header, body)
//	if errors.Is(err, verify.ErrNoMatch) { ... }
//	out := ev.AppendCloudEvent(buf[:0])
//
// # Providers
//
// A provider is a value of one struct, provider, and one engine, Verify,
// runs every one the same way: read the signature header, read the signed id
// and timestamp, hold the timestamp to its window, match the MAC, scan the
// body, hold the body's time, then set the id and the type. A Custom
// configuration compiles into the same struct.
//
// To add a provider, write one file, <name>.go, that opens with the
// provider's contract in a comment (headers and forms, secret, signed bytes,
// body, event id, timestamps and their windows with the retry horizon they
// cover, types) and declares one provider value; list it in providers below
// and add its name to the constants; add a sample body per event type under
// samples/<name>/ and an openssl-computed vector to testdata/vectors.sh.
// Code is needed only for what no field describes, such as Zavu's
// "t=,v1=,v2=" header.
package verify

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Built-in provider names, as used in configuration and as the CloudEvents
// source of their events.
const (
	Wazera  = "wazera"
	Zavu    = "zavu"
	WAStack = "wastack"
	Wazapin = "wazapin"
	Vobiz   = "vobiz"
	// Standard is any sender that follows the Standard Webhooks
	// specification (https://www.standardwebhooks.com/); Options.Name
	// names it.
	Standard = "standard"
)

var providers = map[string]*provider{
	Wazera: &wazera, Zavu: &zavu, WAStack: &wastack, Wazapin: &wazapin, Vobiz: &vobiz, Standard: &standard,
}

// Defaults. A provider's own event-time window and future skew, where it
// has them, are in its file; these apply to the rest.
const (
	// DefaultTolerance is how old a per-attempt signed timestamp may be.
	DefaultTolerance = 5 * time.Minute
	// DefaultMaxAge is how old an event-time timestamp of a custom provider
	// may be: above the 24 to 31 hours over which senders commonly retry,
	// and inside the default dedupe TTL of 48 hours.
	DefaultMaxAge = 36 * time.Hour
	// DefaultFutureSkew is how far in the future any timestamp may be.
	DefaultFutureSkew = 60 * time.Second
	// MaxEventIDLen bounds the length of an event id, in bytes.
	MaxEventIDLen = 256
)

// Options configures a Verifier.
type Options struct {
	// Secrets are the signing secrets, in the provider's own text form (for
	// Standard Webhooks and Wazapin, "whsec_" followed by standard base64,
	// padded or not). During a rotation list the old and the new one: a
	// request passes when any of them verifies it. At least one is required.
	Secrets []string
	// Tolerance is the window for timestamps signed per delivery attempt
	// (Wazapin, Standard Webhooks, Zavu "t="). Default 5 minutes.
	Tolerance time.Duration
	// MaxAge is the window for event-time timestamps, which providers repeat
	// unchanged on every retry (Wazera, Zavu and WAStack bodies, Vobiz). It
	// must exceed the provider's retry horizon or retries are rejected.
	// Default: the provider's own (see its file), DefaultMaxAge for custom.
	MaxAge time.Duration
	// FutureSkew is how far ahead of this clock any timestamp may be.
	// Default 60 seconds (5 minutes for Standard Webhooks and Wazapin, whose
	// specification uses a symmetric window).
	FutureSkew time.Duration
	// Name is the source name of a Standard Webhooks sender, and its dedupe
	// namespace; default "standard". Lower-case letters, digits, '-' and
	// '_', and not a built-in provider's name. Other providers carry their
	// own names.
	Name string
	// Now returns the current time; default time.Now. For tests.
	Now func() time.Time
}

// Providers lists the built-in provider names, sorted.
func Providers() []string {
	names := make([]string, 0, len(providers))
	for name := range providers {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// provider describes one provider's webhooks. Each provider file declares
// one; NewCustom compiles one from configuration; Verify runs them all.
type provider struct {
	name string

	// The signature. Verify reads the headers of the first form whose
	// headers are present (forms that share headers are one set).
	alg            algorithm                           // the HMAC hash; sha256 when zero
	key            func(secret string) ([]byte, error) // secret text to HMAC key; nil: its bytes
	prefix         string                              // text before the MAC in the signature header
	prefixOptional bool                                // the prefix may be left out
	list           bool                                // space-separated entries; those without the prefix are ignored
	enc            encoding                            // how the MAC is written
	parse          func(value string) (request, error) // replaces the four fields above, for a header they cannot describe
	formOf         func(value string) string           // with parse: the form a value is in, for FormOf
	signed         []part                              // the signed bytes before the body; none: the body alone

	// Timestamps and their windows.
	headerTime kind                            // the signed timestamp, from a header or the signature
	parseTime  func(string) (time.Time, error) // how a header timestamp is written; default Unix seconds
	bodyTime   kind                            // the body's time member
	maxAge     time.Duration                   // event-time window; default DefaultMaxAge
	futureSkew time.Duration                   // default DefaultFutureSkew

	// The body and the event.
	layout     *layout
	deriveID   bool                                      // with no id in headers or body, the id is derived from the body
	types      map[string]string                         // the provider's event names to canonical types; others are kept
	typeHeader string                                    // an unsigned header with the type, read when the body has none
	setType    func(ev Event) (providerType, typ string) // replaces types and typeHeader

	// Signing, for Sign and the `caddy webhook` tools.
	forms []Form // the current form first
	// sign writes the signature header's value in a form that prefix and
	// enc do not describe; mac returns the MAC over the signed template
	// (nil: the body alone) with ts in place.
	sign func(form string, mac func(signed []part) []byte, ts string) string
}

// kind is what a timestamp means, and so which window holds it.
type kind uint8

const (
	noTime      kind = iota
	attemptTime      // set per delivery attempt: held to Tolerance
	eventTime        // when the event happened, repeated on retries: held to MaxAge
	infoTime         // the event's time when valid, held to no window (a signed attempt time is)
)

// Verifier checks requests of one provider. It is safe for concurrent use.
type Verifier struct {
	*provider
	name       string
	sets       []headerSet
	keys       []*key
	tolerance  time.Duration
	maxAge     time.Duration
	futureSkew time.Duration
	now        func() time.Time
	idInBody   bool // the layout reads an event id: a derived id is a fallback
}

// New returns a Verifier for a built-in provider.
func New(provider string, opts Options) (*Verifier, error) {
	p, ok := providers[provider]
	if !ok {
		return nil, fmt.Errorf("unknown provider %q (known: %v)", provider, Providers())
	}
	name := p.name
	if provider == Standard && opts.Name != "" && opts.Name != Standard {
		if err := checkName(opts.Name); err != nil {
			return nil, fmt.Errorf("name %w", err)
		}
		name = opts.Name
	}
	return newVerifier(name, p, opts)
}

// checkName checks a provider name given in configuration: it is the
// CloudEvents source and the dedupe namespace, so it must be plain and
// must not be a built-in provider's.
func checkName(n string) error {
	plain := n != "" && len(n) <= 64
	for _, c := range n {
		plain = plain && (c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_')
	}
	if !plain {
		return fmt.Errorf("%q: use 1 to 64 lower-case letters, digits, '-' and '_'", n)
	}
	if _, builtin := providers[n]; builtin {
		return fmt.Errorf("%q is a built-in provider", n)
	}
	return nil
}

// newVerifier applies every default and builds the keys.
func newVerifier(name string, p *provider, opts Options) (*Verifier, error) {
	if err := checkTemplate(p.signed); err != nil {
		return nil, err
	}
	if len(opts.Secrets) == 0 {
		return nil, errors.New("at least one secret is required")
	}
	if opts.Tolerance < 0 || opts.MaxAge < 0 || opts.FutureSkew < 0 {
		return nil, errors.New("windows must not be negative")
	}
	v := &Verifier{
		provider:   p,
		name:       name,
		tolerance:  firstSet(opts.Tolerance, DefaultTolerance),
		maxAge:     firstSet(opts.MaxAge, p.maxAge, DefaultMaxAge),
		futureSkew: firstSet(opts.FutureSkew, p.futureSkew, DefaultFutureSkew),
		now:        opts.Now,
		idInBody:   p.layout.readsID(),
	}
	if v.now == nil {
		v.now = time.Now
	}
	for _, f := range p.forms {
		set := headerSet{canonicalHeader(f.headers.sig), canonicalHeader(f.headers.id), canonicalHeader(f.headers.time)}
		if !slices.Contains(v.sets, set) {
			v.sets = append(v.sets, set)
		}
	}
	alg := p.alg
	if alg.new == nil {
		alg = sha256Alg
	}
	for i, secret := range opts.Secrets {
		if secret == "" {
			return nil, fmt.Errorf("secret %d is empty", i+1)
		}
		raw := []byte(secret)
		if p.key != nil {
			var err error
			if raw, err = p.key(secret); err != nil {
				return nil, fmt.Errorf("secret %d: %w", i+1, err)
			}
		}
		v.keys = append(v.keys, newKey(alg, raw))
	}
	return v, nil
}

// firstSet returns the first of ds that is not zero.
func firstSet(ds ...time.Duration) time.Duration {
	for _, d := range ds {
		if d != 0 {
			return d
		}
	}
	return 0
}

// Name returns the provider name, which is also the CloudEvents source.
func (v *Verifier) Name() string { return v.name }

// SignatureHeaders names the headers that carry the provider's
// signatures, so that a caller can keep them out of logs once checked.
func (v *Verifier) SignatureHeaders() []string {
	var names []string
	for _, f := range v.forms {
		if !slices.Contains(names, f.headers.sig) {
			names = append(names, f.headers.sig)
		}
	}
	return names
}

// Headers names every header the provider reads: its signature headers,
// the signed id and timestamp headers of its forms, and a type header.
func (v *Verifier) Headers() []string {
	var names []string
	for _, f := range v.forms {
		for _, n := range []string{f.headers.sig, f.headers.id, f.headers.time} {
			if n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	if v.typeHeader != "" && !slices.Contains(names, v.typeHeader) {
		names = append(names, v.typeHeader)
	}
	return names
}

// FormOf names the signature form a request's headers are in (a Name
// from Forms), or "" when no signature header of the provider is there.
// It is for a diagnosis ("which form did the sender use?"), never for the
// check: Verify tries every form the provider accepts.
func (v *Verifier) FormOf(h http.Header) string {
	set := v.headerSet(h)
	value := h.Get(set.sig)
	if value == "" {
		return ""
	}
	if v.provider.formOf != nil {
		return v.provider.formOf(value)
	}
	first := ""
	for _, f := range v.forms {
		if canonicalHeader(f.headers.sig) != set.sig {
			continue
		}
		if first == "" {
			first = f.Name
		}
		mac, ok := strings.CutPrefix(value, f.prefix)
		if v.provider.parse == nil && ok && (f.enc == base64MAC) != allHex(mac) {
			return f.Name
		}
	}
	return first
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return s != ""
}

// Forms returns the signature forms of the Verifier's provider, the current
// one first.
func (v *Verifier) Forms() []Form { return v.forms }

// window returns the window that holds a timestamp of kind k.
func (v *Verifier) window(k kind) time.Duration {
	switch k {
	case attemptTime:
		return v.tolerance
	case eventTime:
		return v.maxAge
	}
	return 0
}

// Window returns how long one timestamp value stays acceptable: from when
// it is FutureSkew ahead of the clock until it is as old as the largest
// window the Verifier applies. A replay is refused only if the dedupe store
// remembers the event id at least this long. Zero means the provider's
// requests carry no timestamp (a custom provider without one), so only the
// dedupe store stands between a replay and the upstream.
func (v *Verifier) Window() time.Duration {
	w := max(v.window(v.headerTime), v.window(v.bodyTime))
	if w == 0 {
		return 0
	}
	return w + v.futureSkew
}

// Verify checks a request's signature and timestamps and returns its
// normalised event. body must be the raw bytes as received; the Event
// refers to it and does not copy it. The error, if any, wraps one of the
// package's sentinel errors.
func (v *Verifier) Verify(h http.Header, body []byte) (Event, error) {
	ev := Event{Provider: v.name, Body: body}
	if err := v.verify(h, body, &ev); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// request is what the headers say, before the MAC is checked.
type request struct {
	c      candidates
	id, ts string // the signed id and timestamp, as sent
	signed []part // the template this request is signed with, where the signature header chooses it
}

// overlapMin is the body size from which the passes over the body run in
// parallel: below it, starting goroutines costs more than they save.
const overlapMin = 128 << 10

func (v *Verifier) verify(h http.Header, body []byte, ev *Event) error {
	// The signature and the signed headers. A signed header that is absent
	// fails like an absent signature: the request cannot be authenticated.
	set := v.headerSet(h)
	sig, err := singleHeader(h, set.sig)
	if err != nil {
		return err
	}
	var r request
	if v.parse != nil {
		r, err = v.parse(sig)
	} else {
		err = v.readMAC(sig, &r.c)
	}
	if err != nil {
		return err
	}
	if r.signed == nil {
		r.signed = v.signed
	}
	if set.id != "" {
		if r.id, err = singleHeader(h, set.id); err != nil {
			return fmt.Errorf("%w: %s", err, set.id)
		}
		if !usableID(r.id) {
			return ErrMissingEventID
		}
	}
	if set.time != "" {
		if r.ts, err = singleHeader(h, set.time); err == ErrMissingSignature {
			return ErrMissingTimestamp
		} else if err != nil {
			return err
		}
	}
	if err := separated(r.signed, r.id, r.ts); err != nil {
		return err
	}
	if r.ts != "" {
		parse := v.parseTime
		if parse == nil {
			parse = parseUnixSeconds
		}
		t, err := parse(r.ts)
		if err != nil {
			return err
		}
		if err := v.hold(v.headerTime, t, ev); err != nil {
			return err
		}
	}
	// The MAC, then the body. A large body's other passes (the scan, and
	// the derived id's hash when the body never carries the id) run beside
	// the MAC on other cores; their results are used only once the MAC has
	// matched. Where the body may carry the id (WAStack, Vobiz), the hash
	// waits for the scan to find none: most such bodies have one, and the
	// hash is a pass as long as the MAC.
	var secret int
	var scanErr error
	var derived string
	if len(body) >= overlapMin {
		secret, err, scanErr, derived = v.matchBeside(&r, body, ev)
	} else if secret, err = v.match(&r, body); err == nil {
		scanErr = scanBody(body, v.layout, ev)
	}
	if err != nil {
		return err
	}
	ev.Secret = secret
	if scanErr != nil {
		return scanErr
	}
	switch t, err := parseTimeToken(ev.time); {
	case v.bodyTime == infoTime && err == nil:
		ev.Time = t
	case v.bodyTime == attemptTime || v.bodyTime == eventTime:
		if err != nil {
			return bodyErr(err, "event time")
		}
		if err := v.hold(v.bodyTime, t, ev); err != nil {
			return err
		}
	}
	switch {
	case r.id != "":
		ev.ID = r.id
	case ev.id != nil && string(ev.id) != "null":
		id, ok := tokenString(ev.id)
		if !ok || !usableID(id) {
			return ErrMissingEventID
		}
		ev.ID = id
	case v.deriveID && derived != "":
		ev.ID = derived
	case v.deriveID:
		ev.ID = bodyID(body)
	default:
		return ErrMissingEventID
	}
	v.setType(h, ev)
	// the type goes into a header and a placeholder: one with control
	// characters, or longer than an id may be, is reported as unknown
	// (the payload still holds it) rather than failing every attempt
	if !usableID(ev.Type) {
		ev.Type = "unknown"
	}
	return nil
}

// matchBeside is match for a large body, with the body's other passes
// run beside it (on their own, so that the variables they share escape to
// the heap for large bodies only).
func (v *Verifier) matchBeside(r *request, body []byte, ev *Event) (secret int, err, scanErr error, derived string) {
	var others sync.WaitGroup
	others.Go(func() { scanErr = scanBody(body, v.layout, ev) })
	if v.deriveID && !v.idInBody {
		others.Go(func() { derived = bodyID(body) })
	}
	secret, err = v.match(r, body)
	others.Wait()
	return secret, err, scanErr, derived
}

// setType sets the event's provider type and canonical type.
func (v *Verifier) setType(h http.Header, ev *Event) {
	if v.provider.setType != nil {
		ev.ProviderType, ev.Type = v.provider.setType(*ev)
		return
	}
	name, ok := tokenString(ev.typ)
	if ev.typ == nil && v.typeHeader != "" {
		name, ok = h.Get(v.typeHeader), true
	}
	if !ok || name == "" {
		name = "unknown"
	}
	ev.ProviderType, ev.Type = name, name
	if c, ok := v.types[name]; ok {
		ev.Type = c
		if c == name {
			ev.ProviderType = c // the constant: one string fewer
		}
	}
}

// headerSet returns the headers of the first form any of whose headers is
// present; when none is, the last form's, whose signature is then missing.
// Sets are never mixed.
func (v *Verifier) headerSet(h http.Header) headerSet {
	for _, s := range v.sets[:len(v.sets)-1] {
		if len(h[s.sig]) > 0 || (s.id != "" && len(h[s.id]) > 0) || (s.time != "" && len(h[s.time]) > 0) {
			return s
		}
	}
	return v.sets[len(v.sets)-1]
}

// hold sets ev.Time to t and holds it to the window of its kind and to the
// future skew.
func (v *Verifier) hold(k kind, t time.Time, ev *Event) error {
	ev.Time = t
	w := v.window(k)
	now := v.now()
	if age := now.Sub(t); age > w {
		return &TimestampError{Err: ErrTimestampTooOld, Window: w, By: age - w}
	}
	if ahead := t.Sub(now); ahead > v.futureSkew {
		return &TimestampError{Err: ErrTimestampTooNew, Window: v.futureSkew, By: ahead - v.futureSkew}
	}
	ev.Window = max(ev.Window, w+v.futureSkew)
	return nil
}
