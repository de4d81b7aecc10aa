// Package caddymodule is the webhook_verify Caddy HTTP handler: it verifies
// each inbound webhook with verify/, drops duplicates with dedupe/, rewrites
// the body into the normalised event, and hands the request to the next
// handler (normally reverse_proxy). It is the thin adapter between Caddy
// and those two libraries.
package caddymodule

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wagate/caddy-webhook/archive"
	"github.com/wagate/caddy-webhook/dedupe"
	"github.com/wagate/caddy-webhook/verify"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults applied in Provision.
const (
	DefaultMaxBody     = 1 << 20
	DefaultInFlightTTL = 60 * time.Second
	DefaultKeyPrefix   = "webhook:"
)

// Handler verifies, dedupes and normalises webhooks from one provider, then
// passes them to the next handler.
//
// It sets these placeholders for logs, headers and matchers:
//
//	{http.webhook.provider}    the provider's name
//	{http.webhook.event_id}    the event id, once verified
//	{http.webhook.event_type}  the canonical event type, once verified
//	{http.webhook.verified}    true when the signature and timestamps passed
//	{http.webhook.duplicate}   true when the event was already delivered
//
// Forwarded requests carry Webhook-Provider, Webhook-Event-Id and
// Webhook-Event-Type headers; inbound headers of those names are removed
// first, so no client can forge them.
type Handler struct {
	// Provider is one of wazera, zavu, wastack, wazapin, vobiz; standard
	// for any Standard Webhooks sender; or custom, described by Custom.
	// Required: the provider is never guessed from the request.
	Provider string `json:"provider,omitempty"`
	// Name is the source name of a standard provider (default "standard").
	Name string `json:"name,omitempty"`
	// Secrets are the signing secrets; list two during a rotation. Each
	// takes placeholders, such as {env.WAZERA_SECRET} or {file./run/secrets/wazera}.
	// At least one is required.
	Secrets []string `json:"secrets,omitempty"`
	// Tolerance is the window for timestamps signed per delivery attempt
	// (Wazapin, Standard Webhooks, Zavu t=). Default 5m.
	Tolerance caddy.Duration `json:"tolerance,omitempty"`
	// MaxAge is the window for event-time timestamps, which providers
	// repeat on retries. Default per provider, above its retry horizon:
	// wazera 30h, zavu 4h, wastack 36h, vobiz 30h.
	MaxAge caddy.Duration `json:"max_age,omitempty"`
	// FutureSkew is how far ahead any timestamp may be. Default 60s (5m for
	// wazapin and standard).
	FutureSkew caddy.Duration `json:"future_skew,omitempty"`
	// MaxBody is the largest body accepted, in bytes; larger requests get
	// 413. Default 1 MiB.
	MaxBody int64 `json:"max_body,omitempty"`
	// Dedupe configures the duplicate store. Default: memory.
	Dedupe *Dedupe `json:"dedupe,omitempty"`
	// DedupeTTL is how long a delivered event id is remembered. It must be
	// at least the longest timestamp window applied, or a replay could get
	// through. Default 48h.
	DedupeTTL caddy.Duration `json:"dedupe_ttl,omitempty"`
	// InFlightTTL is how long a claim lasts while the upstream handles the
	// event: set it above your reverse_proxy's response timeout. An
	// abandoned claim (a crashed gateway) frees itself after it. Default 60s.
	InFlightTTL caddy.Duration `json:"in_flight_ttl,omitempty"`
	// OnStoreError is what happens when the dedupe store fails: "open"
	// (default) forwards anyway and counts it, since several providers
	// disable an endpoint after repeated 5xx; "closed" answers 503 with
	// Retry-After, and the provider retries.
	OnStoreError string `json:"on_store_error,omitempty"`
	// Format is the forwarded body: "cloudevents" (default), the normalised
	// CloudEvents 1.0 JSON event; or "raw", the original body untouched.
	Format string `json:"format,omitempty"`
	// Enforce, when false, verifies, logs and counts but forwards every
	// request, for a safe first rollout. Default true.
	Enforce *bool `json:"enforce,omitempty"`
	// Custom describes a provider that is not built in (provider "custom").
	Custom *verify.Custom `json:"custom,omitempty"`
	// Archive keeps every answered request in files, for replay.
	Archive *Archive `json:"archive,omitempty"`

	verifier  *verify.Verifier
	nameValue any             // the provider placeholder's value, boxed once
	own       map[string]bool // the provider's own headers (canonical), kept by stripForgeable
	namespace string          // the dedupe namespace: store, key prefix, provider
	secretSet [32]byte        // a digest of the secrets, never shown
	store     dedupe.Store
	poolKey   string
	enforce   bool
	// flushFirst sends the upstream's answer before the claim is settled,
	// when that takes a round trip to a networked store
	flushFirst bool
	logger     *zap.Logger
	metrics    *metrics
	count      counters
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webhook_verify",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision applies defaults, expands the secrets, builds the verifier and
// acquires the dedupe store.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	var err error
	if h.metrics, err = registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	if h.MaxBody == 0 {
		h.MaxBody = DefaultMaxBody
	}
	if h.DedupeTTL == 0 {
		h.DedupeTTL = caddy.Duration(dedupe.DefaultDoneTTL)
	}
	if h.InFlightTTL == 0 {
		h.InFlightTTL = caddy.Duration(DefaultInFlightTTL)
	}
	if h.OnStoreError == "" {
		h.OnStoreError = "open"
	}
	if h.Format == "" {
		h.Format = "cloudevents"
	}
	h.enforce = h.Enforce == nil || *h.Enforce
	if h.Dedupe == nil {
		h.Dedupe = &Dedupe{}
	}
	if h.Dedupe.Store == "" {
		h.Dedupe.Store = "memory"
	}
	// an option of another store than the one in use is a mistake, not a
	// no-op: a hand-written redis block without "store": "redis" would
	// leave each instance deduplicating on its own
	switch d := h.Dedupe; {
	case d.Redis != nil && d.Store != "redis":
		return fmt.Errorf("dedupe: a redis block with store %q: set \"store\": \"redis\" to use it, or remove it", d.Store)
	case d.MaxEntries != 0 && d.Store != "memory":
		return fmt.Errorf("dedupe: max_entries is an option of the memory store, not of store %q", d.Store)
	case d.KeyPrefix != "" && d.Store == "off":
		return errors.New("dedupe: key_prefix with store off: there is no store for it to name")
	}
	if h.Dedupe.KeyPrefix == "" {
		h.Dedupe.KeyPrefix = DefaultKeyPrefix
	}
	if h.Dedupe.MaxEntries == 0 {
		h.Dedupe.MaxEntries = dedupe.DefaultMaxEntries
	}

	repl := caddy.NewReplacer()
	if h.Dedupe.KeyPrefix, err = expand(repl, "key_prefix", h.Dedupe.KeyPrefix); err != nil {
		return fmt.Errorf("dedupe: %w", err)
	}
	switch {
	case h.Name != "" && h.Provider != verify.Standard:
		return fmt.Errorf("provider %s: name is for the standard provider only (a custom provider's name is in its custom block)", h.Provider)
	case h.Custom != nil && h.Provider != "custom":
		return fmt.Errorf("provider %s: a custom block is for provider custom only", h.Provider)
	}
	secrets := make([]string, 0, len(h.Secrets))
	for _, s := range h.Secrets {
		v, err := expand(repl, "secret", s)
		if err != nil {
			return fmt.Errorf("provider %s: %w", h.providerName(), err)
		}
		if v == "" {
			return fmt.Errorf("provider %s: a secret is empty", h.providerName())
		}
		secrets = append(secrets, v)
	}
	opts := verify.Options{
		Secrets:    secrets,
		Tolerance:  time.Duration(h.Tolerance),
		MaxAge:     time.Duration(h.MaxAge),
		FutureSkew: time.Duration(h.FutureSkew),
		Name:       h.Name,
	}
	switch {
	case h.Provider == "":
		return fmt.Errorf("provider is required: %s", knownProviders())
	case h.Provider == "custom" && h.Custom == nil:
		return errors.New("provider custom needs a custom block")
	case h.Provider == "custom":
		h.verifier, err = verify.NewCustom(*h.Custom, opts)
	default:
		h.verifier, err = verify.New(h.Provider, opts)
	}
	if err != nil {
		return fmt.Errorf("provider %s: %w", h.Provider, err)
	}
	h.count = h.metrics.forProvider(h.verifier.Name(), len(secrets))
	if err := h.provisionArchive(ctx); err != nil {
		return err
	}
	h.nameValue = h.verifier.Name()
	if h.own, err = ownHeaders(h.verifier); err != nil {
		return fmt.Errorf("provider %s: %w", h.providerName(), err)
	}

	switch h.Dedupe.Store {
	case "off", "memory":
	case "redis":
		if h.Dedupe.Redis == nil {
			return errors.New("dedupe redis needs a redis block with an address")
		}
	default:
		return fmt.Errorf("dedupe %q: use memory, redis or off", h.Dedupe.Store)
	}
	if h.store, h.poolKey, err = h.Dedupe.acquire(ctx, repl, h.logger.With(zap.String("provider", h.verifier.Name()))); err != nil {
		return fmt.Errorf("dedupe: %w", err)
	}
	if h.store != nil {
		// every series at 0 from the start, so that a dashboard's rate()
		// of store errors shows 0, not no data, until the first one
		for _, op := range []string{"claim", "commit", "release", "claim_lost"} {
			h.metrics.storeErrs.WithLabelValues(h.verifier.Name(), op)
		}
		h.namespace, h.secretSet = h.poolKey+"|"+h.Dedupe.KeyPrefix+h.verifier.Name(), fingerprint(secrets)
		if shared := namespaces.add(h.namespace, h.secretSet); shared {
			h.logger.Warn("routes with different secrets share one dedupe namespace: an event id that one of them verifies is answered as a duplicate on the other; give each its own key_prefix (after a reload that changed the secrets, this shows once)",
				zap.String("provider", h.verifier.Name()), zap.String("key_prefix", h.Dedupe.KeyPrefix))
		}
	}
	_, local := h.store.(*dedupe.Memory)
	h.flushFirst = h.store != nil && !local
	switch {
	case h.store == nil:
		h.logger.Warn("dedupe is off: a replay inside the timestamp window is forwarded again",
			zap.String("provider", h.verifier.Name()), zap.Duration("window", h.verifier.Window()))
	case h.verifier.Window() == 0:
		h.logger.Warn("this provider's requests carry no timestamp: a replay is refused only while the dedupe store remembers its id",
			zap.String("provider", h.verifier.Name()), zap.Duration("dedupe_ttl", time.Duration(h.DedupeTTL)))
	}
	return nil
}

// namespaces counts the live handlers of each dedupe namespace by secret
// set, to warn when routes with different secrets share one (tenants of one
// provider on one gateway, say): an event id verified by one route would
// be answered as a duplicate on the other.
var namespaces = secretSets{m: map[string]map[[32]byte]int{}}

type secretSets struct {
	sync.Mutex
	m map[string]map[[32]byte]int
}

// add counts a handler and reports whether its namespace holds another
// secret set.
func (s *secretSets) add(ns string, set [32]byte) (shared bool) {
	s.Lock()
	defer s.Unlock()
	if s.m[ns] == nil {
		s.m[ns] = map[[32]byte]int{}
	}
	for other, n := range s.m[ns] {
		shared = shared || (other != set && n > 0)
	}
	s.m[ns][set]++
	return shared
}

func (s *secretSets) remove(ns string, set [32]byte) {
	if ns == "" {
		return
	}
	s.Lock()
	defer s.Unlock()
	if s.m[ns][set]--; s.m[ns][set] <= 0 {
		delete(s.m[ns], set)
	}
	if len(s.m[ns]) == 0 {
		delete(s.m, ns)
	}
}

// fingerprint digests a set of secrets, in any order.
func fingerprint(secrets []string) [32]byte {
	sorted := slices.Sorted(slices.Values(secrets))
	return sha256.Sum256([]byte(strings.Join(sorted, "\x00")))
}

// knownProviders lists what the provider option takes.
func knownProviders() string {
	return strings.Join(append(verify.Providers(), "custom"), ", ")
}

// providerName names the route's provider in errors before the verifier
// exists: the configured name of a standard or custom provider, which
// tells two routes of one kind apart.
func (h *Handler) providerName() string {
	switch {
	case h.Provider == "custom" && h.Custom != nil && h.Custom.Name != "":
		return "custom " + h.Custom.Name
	case h.Name != "":
		return h.Provider + " " + h.Name
	}
	return h.Provider
}

// expand replaces the placeholders in an option's value. An option that
// is set but whose placeholders expand to nothing, or that names an
// unknown placeholder, is an error that names the placeholders (never the
// value: it may be a secret): an unset {env.REDIS_ADDR} must not quietly
// mean a default. An option left unset expands to "".
func expand(repl *caddy.Replacer, option, value string) (string, error) {
	if value == "" {
		return "", nil
	}
	v, err := repl.ReplaceOrErr(value, true, true)
	if err != nil || v == "" {
		// a secret is named only when it is one placeholder and nothing
		// else ({env.X}): no part of a literal secret may show, and a
		// brace in one would otherwise be taken for a placeholder
		secret := strings.Contains(option, "secret") || strings.Contains(option, "password")
		shown := placeholders(value, secret)
		if secret && !(strings.HasPrefix(value, "{") && strings.IndexByte(value, '}') == len(value)-1) {
			shown = "(a placeholder in it)"
		}
		return "", fmt.Errorf("%s %s: expanded to nothing; set the variable or file, or remove the option", option, shown)
	}
	return v, nil
}

// placeholders returns the {…} parts of s, joined for an error message;
// with dotted, only those with a dotted name ({env.X}, {file./path}), so
// that no part of a literal secret is shown.
func placeholders(s string, dotted bool) string {
	var found []string
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			break
		}
		if p := s[i : i+j+1]; (!dotted || strings.Contains(p, ".")) && !strings.ContainsAny(p[1:len(p)-1], "{ ") {
			found = append(found, p)
		}
		s = s[i+j+1:]
	}
	if len(found) == 0 {
		return "(a placeholder in it)"
	}
	return strings.Join(found, " ")
}

// Validate checks the configuration without changing it.
func (h *Handler) Validate() error {
	switch h.OnStoreError {
	case "open", "closed":
	default:
		return fmt.Errorf("on_store_error %q: use open or closed", h.OnStoreError)
	}
	switch h.Format {
	case "cloudevents", "raw":
	default:
		return fmt.Errorf("format %q: use cloudevents or raw", h.Format)
	}
	if h.MaxBody < 0 {
		return fmt.Errorf("max_body %d: must be positive", h.MaxBody)
	}
	if h.InFlightTTL < 0 {
		return errors.New("in_flight_ttl must be positive")
	}
	if h.store != nil {
		if w := h.verifier.Window(); w > time.Duration(h.DedupeTTL) {
			return fmt.Errorf("dedupe_ttl %s is shorter than the %s timestamp window of provider %s: a replay could pass after the id is forgotten; raise dedupe_ttl or lower the window",
				time.Duration(h.DedupeTTL), w, h.verifier.Name())
		}
	}
	return nil
}

// Cleanup releases the dedupe store; safe after a failed Provision.
func (h *Handler) Cleanup() error {
	namespaces.remove(h.namespace, h.secretSet)
	return errors.Join(releaseStore(h.poolKey), h.cleanupArchive())
}

// ServeHTTP implements caddyhttp.MiddlewareHandler. A request goes
// through four steps: verify, claim, forward, settle (commit on a 2xx,
// release on anything else).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if first, twice := repl.Get("http.webhook.provider"); twice {
		// a second verifier on one request (an import repeated, two
		// providers in one block): it would refuse every event the first
		// let through, as in flight or unsigned. The first releases its
		// claim on this 500, and the log names the layout.
		h.logger.Error("two webhook_verify handlers on one request: give each provider its own handle block",
			zap.Any("first", first), zap.Any("second", h.nameValue))
		return caddyhttp.Error(http.StatusInternalServerError, errVerifiedTwice)
	}
	repl.Set("http.webhook.provider", h.nameValue)
	repl.Set("http.webhook.verified", false)
	repl.Set("http.webhook.duplicate", false)
	received := h.archiveHeader(r) // before any header is stripped
	stripForgeable(r.Header, h.own)

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.archiveRequest(r, received, nil, archive.Rejected, "method_not_allowed")
		return h.reject(r, http.StatusMethodNotAllowed, "method_not_allowed", errMethod, "")
	}
	body, err := readBody(w, r, h.MaxBody)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.archiveRequest(r, received, nil, archive.Rejected, "body_too_large")
			return h.reject(r, http.StatusRequestEntityTooLarge, "body_too_large", errTooLarge, "")
		}
		h.archiveRequest(r, received, nil, archive.Rejected, "body_unreadable")
		return h.reject(r, http.StatusBadRequest, "body_unreadable", errUnreadable, "")
	}
	defer body.release() // once handed to the next handler, the buffer waits for its readers too

	// 1. verify
	start := time.Now()
	ev, verr := h.verifier.Verify(r.Header, body.Bytes())
	h.count.verify.Observe(time.Since(start).Seconds())
	if verr != nil && !h.enforce {
		_, reason := classify(verr)
		h.logReject(r, reason, verr, "", "forwarded: enforce off")
		h.count.unverified.Inc()
		ref, _ := h.archiveUnverified(r, received, body.Bytes(), archive.Unverified, reason, verr)
		h.gatewayHeaders(r, nil)
		body.handOff(r, nil, nil) // as received, signatures included: the app may check them
		return h.deliver(w, r, next, dedupe.Claim{}, "", ref)
	}
	if verr != nil || h.Format == "cloudevents" {
		// checked: keep signatures out of Caddy's logs, and out of the
		// upstream when they cannot match the body it receives
		for _, header := range h.verifier.SignatureHeaders() {
			r.Header.Del(header)
		}
	}
	if verr != nil {
		status, reason := classify(verr)
		h.archiveUnverified(r, received, body.Bytes(), archive.Rejected, reason, verr)
		return h.reject(r, status, reason, verr, "")
	}
	repl.Set("http.webhook.verified", true)
	h.count.secretMatched(ev.Secret)
	repl.Set("http.webhook.event_id", ev.ID)
	repl.Set("http.webhook.event_type", ev.Type)
	// the sign, for the sender, that the request passed this handler
	w.Header()["Webhook-Event-Id"] = []string{ev.ID}

	// the record is in the file before the event is claimed, so before
	// the upstream can see it: a gateway killed at any point after the
	// claim leaves the event in the archive, for replay
	var head []byte // the CloudEvent head, built once for the record and the forward
	if h.archiving() {
		p := cloudEventHead(&ev)
		defer putHead(p)
		head = *p
	}
	ref, aerr := h.archiveVerified(r, received, body.Bytes(), &ev, head)

	// 2. claim
	claimStart := time.Now()
	claim, answered, err := h.claim(w, r, &ev)
	if answered {
		// a duplicate, in flight, or a store error with on_store_error
		// closed: the record's outcome gives the verdict
		h.archiveRefused(r, ref, &ev, claim, time.Since(claimStart))
		return err
	}
	if aerr != nil && h.OnStoreError == "closed" {
		// not archived: not forwarded either, and the provider retries
		// (a duplicate was still answered as one, above)
		if claim.Outcome == dedupe.Claimed {
			traceStore(r, "release", claim, h.store.Release(context.WithoutCancel(r.Context()), claim))
		}
		w.Header().Set("Retry-After", "30")
		return h.reject(r, http.StatusServiceUnavailable, "store_unavailable", errStore, ev.ID)
	}

	// 3. forward, 4. settle
	h.count.verified.Inc()
	h.gatewayHeaders(r, &ev)
	if h.Format == "cloudevents" {
		body.handOff(r, &ev, head)
	} else {
		body.handOff(r, nil, nil)
	}
	return h.deliver(w, r, next, claim, ev.ID, ref)
}

// gatewayHeaders sets the headers the upstream reads as the gateway's,
// on a request about to be forwarded: Webhook-Provider, and for a verified
// event Webhook-Event-Id and Webhook-Event-Type. Their values are the
// request's own (a request_header replace edits values in place).
func (h *Handler) gatewayHeaders(r *http.Request, ev *verify.Event) {
	if ev == nil {
		r.Header["Webhook-Provider"] = []string{h.verifier.Name()}
		return
	}
	vals := [...]string{h.verifier.Name(), ev.ID, ev.Type}
	r.Header["Webhook-Provider"] = vals[0:1:1]
	r.Header["Webhook-Event-Id"] = vals[1:2:2]
	r.Header["Webhook-Event-Type"] = vals[2:3:3]
}

// claim claims the event in the dedupe store. answered reports that the
// request got its answer here (a duplicate, an event in flight, or a store
// error with on_store_error closed) and must not be forwarded. With no
// store, or a store error and on_store_error open, the claim is empty and
// the event is forwarded without one.
func (h *Handler) claim(w http.ResponseWriter, r *http.Request, ev *verify.Event) (claim dedupe.Claim, answered bool, err error) {
	if h.store == nil {
		return claim, false, nil
	}
	claim, err = h.store.Claim(r.Context(), dedupe.Key{Provider: h.verifier.Name(), ID: ev.ID}, time.Duration(h.InFlightTTL))
	traceStore(r, "claim", claim, err)
	switch {
	case err != nil:
		h.metrics.storeErrs.WithLabelValues(h.verifier.Name(), "claim").Inc()
		h.logStore(r, "claim", err, ev.ID)
		if h.OnStoreError == "closed" {
			w.Header().Set("Retry-After", "30")
			return claim, true, h.reject(r, http.StatusServiceUnavailable, "store_unavailable", errStore, ev.ID)
		}
		return dedupe.Claim{}, false, nil
	case claim.Outcome == dedupe.Done:
		return claim, true, h.duplicate(w, r, ev)
	case claim.Outcome == dedupe.InFlight:
		h.count.inFlight.Inc()
		h.log(zapcore.InfoLevel, r, "webhook in flight elsewhere", zap.String("event_id", ev.ID))
		w.Header().Set("Retry-After", strconv.Itoa(int(time.Duration(h.InFlightTTL).Seconds())))
		return claim, true, caddyhttp.Error(http.StatusConflict, errInFlight)
	}
	return claim, false, nil
}

// deliver forwards the request and then settles the claim, if it holds
// one: commit when the upstream accepted the event (2xx), release on
// anything else, including a handler error, a cancelled request and a
// panic, so that the provider's retry gets through.
func (h *Handler) deliver(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, claim dedupe.Claim, eventID string, ref archive.Ref) error {
	status := 0
	var err error
	start := time.Now()
	defer func() { // runs on a panic too, with status 0
		settled := archive.None
		if claim.Outcome == dedupe.Claimed {
			h.settle(r, claim, status, eventID)
			settled = archive.Released
			if status >= 200 && status < 300 {
				settled = archive.Committed
			}
		}
		h.archiveOutcome(ref, status, err, time.Since(start), settled)
	}()
	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	err = next.ServeHTTP(rec, r)
	status = rec.Status()
	if status != 0 && h.flushFirst {
		// the answer goes out now: settling the claim, a round trip to a
		// networked store, does not hold it back. The memory store's
		// settle takes less than the flush itself, and so does archiving
		// the outcome: under load it joins another request's write, and
		// alone it is one write(2) to the page cache
		http.NewResponseController(w).Flush()
	}
	if status < 200 && err == nil {
		// nothing after webhook_verify gave a final answer (a 1xx such as
		// Early Hints is not one). Caddy would answer an empty 200, which
		// the provider takes as delivered.
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		up, answered := repl.Get("http.reverse_proxy.status_code")
		code, _ := up.(int)
		switch {
		case answered && code >= 200 && code < 300:
			// the app accepted it, and a handle_response route wrote
			// nothing: the empty 200 is true, the event is committed
			status = code
		case answered:
			// the app refused it: the provider must retry
			status = http.StatusBadGateway
			err = caddyhttp.Error(status, fmt.Errorf("the upstream answered %d, and no handler answered the provider", code))
		default:
			// a reverse_proxy whose matcher skipped the event, or none:
			// released and answered 500, so the provider retries and the
			// layout shows in the log
			status = http.StatusInternalServerError
			err = caddyhttp.Error(status, errNotForwarded)
			h.logger.Error("verified event not forwarded: no handler after webhook_verify answered it; give the route a reverse_proxy that every verified event reaches",
				zap.String("event_id", eventID), zap.String("provider", h.verifier.Name()))
		}
	}
	// a 2xx that was written counts as accepted even if copying the
	// response back failed afterwards: the upstream has the event
	if class := statusClass(status); class == "2xx" {
		h.count.forwarded2xx.Inc()
	} else {
		h.metrics.forwarded.WithLabelValues(h.verifier.Name(), class).Inc()
	}
	return err
}

var (
	errNotForwarded  = errors.New("event not forwarded: no handler answered it")
	errVerifiedTwice = errors.New("two webhook_verify handlers on one request")
)

// settle commits or releases a claim once the upstream answered. The
// request's context may be cancelled already: the store operation must
// still happen, bounded by the store's own timeout.
func (h *Handler) settle(r *http.Request, claim dedupe.Claim, status int, eventID string) {
	ctx := context.WithoutCancel(r.Context())
	op, err := "release", error(nil)
	if status >= 200 && status < 300 {
		op, err = "commit", h.store.Commit(ctx, claim, time.Duration(h.DedupeTTL))
		if errors.Is(err, dedupe.ErrClaimLost) {
			op = "claim_lost"
		}
	} else {
		err = h.store.Release(ctx, claim)
	}
	traceStore(r, op, claim, err)
	if err != nil {
		h.metrics.storeErrs.WithLabelValues(h.verifier.Name(), op).Inc()
		h.logStore(r, op, err, eventID)
	}
}
