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
package verify

import (
	"errors"
	"fmt"
	"hash"
	"net/http"
	"sort"
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

// Defaults shared by the providers. Each provider's event-time window is
// in its file, chosen above its retry horizon.
const (
	// DefaultTolerance is how old a per-attempt signed timestamp may be.
	DefaultTolerance = 5 * time.Minute
	// DefaultFutureSkew is how far in the future any timestamp may be.
	DefaultFutureSkew = 60 * time.Second
	// MaxEventIDLen bounds the length of an event id, in bytes.
	MaxEventIDLen = 256
)

// Options configures a Verifier.
type Options struct {
	// Secrets are the signing secrets, in the provider's own text form (for
	// Standard Webhooks and Wazapin, "whsec_" followed by base64). During a
	// rotation list the old and the new one: a request passes when any of
	// them verifies it. At least one is required.
	Secrets []string
	// Tolerance is the window for timestamps signed per delivery attempt
	// (Wazapin, Standard Webhooks, Zavu "t="). Default 5 minutes.
	Tolerance time.Duration
	// MaxAge is the window for event-time timestamps, which providers repeat
	// unchanged on every retry (Wazera, Zavu and WAStack bodies, Vobiz). It
	// must exceed the provider's retry horizon or retries are rejected.
	// Default: per provider, see DefaultMaxAge.
	MaxAge time.Duration
	// FutureSkew is how far ahead of this clock any timestamp may be.
	// Default 60 seconds (5 minutes for Standard Webhooks and Wazapin, whose
	// specification uses a symmetric window).
	FutureSkew time.Duration
	// Name is the source name of a Standard Webhooks sender; default "standard".
	// The built-in providers and custom ones carry their own names.
	Name string
	// Now returns the current time; default time.Now. For tests.
	Now func() time.Time
}

// DefaultMaxAge returns the default event-time window of a built-in provider:
// a margin above the last retry in PROVIDERS.md, so no legitimate retry is
// ever rejected. Zero means the provider has no event-time timestamp.
func DefaultMaxAge(provider string) time.Duration {
	switch provider {
	case Wazera:
		return 30 * time.Hour // last retry about 26.6 h after the first attempt
	case Zavu:
		return 4 * time.Hour // about 2.6 h
	case WAStack:
		return 36 * time.Hour // about 31.3 h
	case Vobiz:
		return 30 * time.Hour // up to 24 h
	}
	return 0
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

// scheme is one provider's way of checking a request and filling the event.
type scheme interface {
	verify(v *Verifier, h http.Header, body []byte, ev *Event) error
	// windows reports whether requests may carry a per-attempt timestamp
	// and an event-time timestamp.
	windows() (attempt, event bool)
	// signatureHeaders names the headers that carry signatures.
	signatureHeaders() []string
}

type providerDef struct {
	scheme     scheme
	keyDecoder func(string) ([]byte, error)
	futureSkew time.Duration
}

var providers = map[string]providerDef{
	Wazera:   {scheme: wazera{}},
	Zavu:     {scheme: zavu{}},
	WAStack:  {scheme: wastack{}},
	Wazapin:  {scheme: wazapin{}, keyDecoder: decodeWhsec, futureSkew: DefaultTolerance},
	Vobiz:    {scheme: vobiz{}},
	Standard: {scheme: standard{}, keyDecoder: decodeWhsec, futureSkew: DefaultTolerance},
}

// Verifier checks requests of one provider. It is safe for concurrent use.
type Verifier struct {
	name       string
	scheme     scheme
	alg        algorithm
	keys       []*key
	tolerance  time.Duration
	maxAge     time.Duration
	futureSkew time.Duration
	now        func() time.Time
}

// New returns a Verifier for a built-in provider.
func New(provider string, opts Options) (*Verifier, error) {
	def, ok := providers[provider]
	if !ok {
		return nil, fmt.Errorf("unknown provider %q (known: %v)", provider, Providers())
	}
	name := provider
	if provider == Standard && opts.Name != "" {
		name = opts.Name
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge(provider)
	}
	if opts.FutureSkew == 0 && def.futureSkew != 0 {
		opts.FutureSkew = def.futureSkew
	}
	return newVerifier(name, def.scheme, sha256Alg, def.keyDecoder, opts)
}

func newVerifier(name string, s scheme, alg algorithm, decode func(string) ([]byte, error), opts Options) (*Verifier, error) {
	if len(opts.Secrets) == 0 {
		return nil, errors.New("at least one secret is required")
	}
	if opts.Tolerance < 0 || opts.MaxAge < 0 || opts.FutureSkew < 0 {
		return nil, errors.New("windows must not be negative")
	}
	v := &Verifier{
		name:       name,
		scheme:     s,
		alg:        alg,
		tolerance:  opts.Tolerance,
		maxAge:     opts.MaxAge,
		futureSkew: opts.FutureSkew,
		now:        opts.Now,
	}
	if v.tolerance == 0 {
		v.tolerance = DefaultTolerance
	}
	if v.futureSkew == 0 {
		v.futureSkew = DefaultFutureSkew
	}
	if v.now == nil {
		v.now = time.Now
	}
	for i, secret := range opts.Secrets {
		if secret == "" {
			return nil, fmt.Errorf("secret %d is empty", i+1)
		}
		raw := []byte(secret)
		if decode != nil {
			var err error
			if raw, err = decode(secret); err != nil {
				return nil, fmt.Errorf("secret %d: %w", i+1, err)
			}
		}
		v.keys = append(v.keys, newKey(alg, raw))
	}
	return v, nil
}

// Name returns the provider name, which is also the CloudEvents source.
func (v *Verifier) Name() string { return v.name }

// SignatureHeaders names the headers that carry the provider's
// signatures, so that a caller can keep them out of logs once checked.
func (v *Verifier) SignatureHeaders() []string { return v.scheme.signatureHeaders() }

// Window returns the longest time after an event's timestamp during which a
// request carrying it can still be accepted: the largest window the
// Verifier applies plus the allowed future skew. A replay is refused only if
// the dedupe store remembers the event id at least this long. Zero means
// the Verifier applies no timestamp window (a custom scheme without
// timestamps), so only the dedupe store stands between a replay and the
// upstream.
func (v *Verifier) Window() time.Duration {
	attempt, event := v.scheme.windows()
	var w time.Duration
	if attempt {
		w = v.tolerance
	}
	if event && v.maxAge > w {
		w = v.maxAge
	}
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
	if err := v.scheme.verify(v, h, body, &ev); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// checkTime holds t to [now-window, now+futureSkew].
func (v *Verifier) checkTime(t time.Time, window time.Duration) error {
	now := v.now()
	if age := now.Sub(t); age > window {
		return &TimestampError{Err: ErrTimestampTooOld, Window: window, By: age - window}
	}
	if ahead := t.Sub(now); ahead > v.futureSkew {
		return &TimestampError{Err: ErrTimestampTooNew, Window: v.futureSkew, By: ahead - v.futureSkew}
	}
	return nil
}

// algorithm is a hash usable for HMAC.
type algorithm struct {
	name string
	new  func() hash.Hash
	size int
}
