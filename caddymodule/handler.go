// Package caddymodule is the webhook_verify Caddy HTTP handler: it verifies
// each inbound webhook with verify/, drops duplicates with dedupe/, rewrites
// the body into the normalised event, and hands the request to the next
// handler (normally reverse_proxy). It is the thin adapter between Caddy
// and those two libraries.
package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

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

	verifier *verify.Verifier
	store    dedupe.Store
	poolKey  string
	enforce  bool
	logger   *zap.Logger
	metrics  *metrics
	count    counters
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
	if h.Dedupe.KeyPrefix == "" {
		h.Dedupe.KeyPrefix = DefaultKeyPrefix
	}
	if h.Dedupe.MaxEntries == 0 {
		h.Dedupe.MaxEntries = dedupe.DefaultMaxEntries
	}

	repl := caddy.NewReplacer()
	secrets := make([]string, 0, len(h.Secrets))
	for i, s := range h.Secrets {
		v, err := repl.ReplaceOrErr(s, true, true)
		if err != nil || v == "" {
			return fmt.Errorf("secret %d: a placeholder in it did not expand to a value", i+1)
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
		return errors.New("provider is required: wazera, zavu, wastack, wazapin, vobiz, standard or custom")
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
	h.count = h.metrics.forProvider(h.verifier.Name())

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
	return releaseStore(h.poolKey)
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	name := h.verifier.Name()
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.webhook.provider", name)
	repl.Set("http.webhook.verified", false)
	repl.Set("http.webhook.duplicate", false)

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return h.reject(r, http.StatusMethodNotAllowed, "method_not_allowed", errMethod, "")
	}
	body, err := readBody(w, r, h.MaxBody)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return h.reject(r, http.StatusRequestEntityTooLarge, "body_too_large", errTooLarge, "")
		}
		return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("webhook: reading body: %w", err))
	}

	start := time.Now()
	ev, err := h.verifier.Verify(r.Header, body.Bytes())
	h.count.verify.Observe(time.Since(start).Seconds())
	stripForgeable(r.Header)
	r.Header.Set("Webhook-Provider", name)
	if h.enforce && (err != nil || h.Format == "cloudevents") {
		// checked: keep signatures out of Caddy's logs and the upstream
		// (they do not match a rewritten body anyway)
		for _, header := range h.verifier.SignatureHeaders() {
			r.Header.Del(header)
		}
	}
	if err != nil {
		status, reason := classify(err)
		if h.enforce {
			body.free()
			return h.reject(r, status, reason, err, "")
		}
		h.logReject(r, reason, err, "", "forwarded: enforce off")
		h.count.unverified.Inc()
		body.restore(r)
		_, err := h.forward(w, r, next)
		return err
	}
	h.count.verified.Inc()
	repl.Set("http.webhook.verified", true)
	repl.Set("http.webhook.event_id", ev.ID)
	repl.Set("http.webhook.event_type", ev.Type)
	r.Header.Set("Webhook-Event-Id", ev.ID)
	r.Header.Set("Webhook-Event-Type", ev.Type)

	var claim dedupe.Claim
	if h.store != nil {
		claim, err = h.store.Claim(r.Context(), dedupe.Key{Provider: name, ID: ev.ID}, time.Duration(h.InFlightTTL))
		switch {
		case err != nil:
			h.count.storeError.Inc()
			h.metrics.storeErrs.WithLabelValues(name, "claim").Inc()
			h.logStore(r, "claim", err, ev.ID)
			if h.OnStoreError == "closed" {
				body.free()
				w.Header().Set("Retry-After", "30")
				return h.reject(r, http.StatusServiceUnavailable, "store_unavailable", errStore, ev.ID)
			}
		case claim.Outcome == dedupe.Done:
			body.free()
			return h.duplicate(w, r, &ev)
		case claim.Outcome == dedupe.InFlight:
			body.free()
			h.count.inFlight.Inc()
			h.log(zapcore.InfoLevel, r, "webhook in flight elsewhere", zap.String("event_id", ev.ID))
			w.Header().Set("Retry-After", strconv.Itoa(int(time.Duration(h.InFlightTTL).Seconds())))
			return caddyhttp.Error(http.StatusConflict, errInFlight)
		}
	}

	if h.Format == "cloudevents" {
		body.cloudEvent(r, &ev)
	} else {
		body.restore(r)
	}
	return h.deliver(w, r, next, claim, &ev)
}

// deliver forwards the event and then commits the claim if the upstream
// accepted it (2xx) or releases it otherwise: on an error status, a
// handler error, a cancelled request or a panic.
func (h *Handler) deliver(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, claim dedupe.Claim, ev *verify.Event) (err error) {
	name := h.verifier.Name()
	status := 0
	settled := false
	settle := func() {
		if settled || claim.Outcome != dedupe.Claimed {
			return
		}
		settled = true
		// the request's context may be cancelled already: the store
		// operation must still happen, bounded by the store's own timeout
		ctx := context.WithoutCancel(r.Context())
		if status >= 200 && status < 300 {
			if err := h.store.Commit(ctx, claim, time.Duration(h.DedupeTTL)); err != nil {
				op := "commit"
				if errors.Is(err, dedupe.ErrClaimLost) {
					op = "claim_lost"
				}
				h.metrics.storeErrs.WithLabelValues(name, op).Inc()
				h.logStore(r, op, err, ev.ID)
			}
			return
		}
		if err := h.store.Release(ctx, claim); err != nil {
			h.metrics.storeErrs.WithLabelValues(name, "release").Inc()
			h.logStore(r, "release", err, ev.ID)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			status = 0
			settle()
			panic(p)
		}
	}()
	status, err = h.forward(w, r, next)
	settle()
	return err
}

// forward calls the next handler and returns the status it wrote: the
// upstream's answer, or 0 if it wrote none and failed. A 2xx that was
// written counts as accepted even if copying the response back failed
// afterwards, since the upstream has the event.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (int, error) {
	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	err := next.ServeHTTP(rec, r)
	status := rec.Status()
	if status == 0 && err == nil {
		status = http.StatusOK // nothing written and no error: net/http answers 200
	}
	if class := statusClass(status); class == "2xx" {
		h.count.forwarded2xx.Inc()
	} else {
		h.metrics.forwarded.WithLabelValues(h.verifier.Name(), class).Inc()
	}
	return status, err
}
