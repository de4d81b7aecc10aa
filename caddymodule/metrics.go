package caddymodule

import (
	"errors"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics in Caddy's registry, namespace caddy, subsystem webhook:
//
//	caddy_webhook_requests_total{provider,outcome}
//	    each request the handler sees, counted once, by how it ended:
//	    verified (verified and forwarded, also after a store error with
//	    on_store_error open), rejected (answered 4xx or 503 here; the
//	    reason is in rejected_total), duplicate (answered 200, not
//	    forwarded), in_flight (answered 409), unverified_forwarded
//	    (enforce off)
//	caddy_webhook_rejected_total{provider,reason}
//	    reason: method_not_allowed, body_too_large, missing_signature,
//	    malformed_signature, no_match, missing_timestamp,
//	    malformed_timestamp, timestamp_too_old, timestamp_too_new,
//	    malformed_body, missing_event_id, body_unreadable,
//	    store_unavailable
//	caddy_webhook_forwarded_total{provider,status}
//	    status: the upstream's answer as 2xx, 3xx, 4xx, 5xx, or error
//	caddy_webhook_store_errors_total{provider,op}
//	    op: claim, commit, release, claim_lost
//	caddy_webhook_verify_duration_seconds{provider}
//	caddy_webhook_secret_matches_total{provider,secret}
//	    requests verified, by the position of the configured secret that
//	    matched, from 0: during a rotation, the old secret's count stops
//	    growing once every sender signs with the new one
type metrics struct {
	requests  *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	forwarded *prometheus.CounterVec
	storeErrs *prometheus.CounterVec
	verify    *prometheus.HistogramVec
	secrets   *prometheus.CounterVec
}

// The collectors are built once per process; Provision registers them with
// each config's registry, tolerating the ones already registered.
var collectors = sync.OnceValue(func() *metrics {
	const ns, sub = "caddy", "webhook"
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Webhook requests by provider and outcome.",
		}, []string{"provider", "outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "rejected_total",
			Help: "Rejected webhook requests by provider and reason.",
		}, []string{"provider", "reason"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "forwarded_total",
			Help: "Webhook events forwarded upstream, by the upstream's status class.",
		}, []string{"provider", "status"}),
		storeErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "store_errors_total",
			Help: "Dedupe store errors by operation.",
		}, []string{"provider", "op"}),
		verify: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "verify_duration_seconds",
			Help:    "Time to verify and normalise a webhook request.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01},
		}, []string{"provider"}),
		secrets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "secret_matches_total",
			Help: "Verified webhook requests by the position of the secret that matched.",
		}, []string{"provider", "secret"}),
	}
})

func registerMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := collectors()
	return m, register(reg, m.requests, m.rejected, m.forwarded, m.storeErrs, m.verify, m.secrets)
}

// register registers collectors with a config's registry (nil: none),
// tolerating the ones already registered by an earlier config.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); !ok {
				return err
			}
		}
	}
	return nil
}

// counters are one handler's metric children, resolved once at Provision
// so that a request does not hash label values.
type counters struct {
	verified, duplicate, inFlight, unverified prometheus.Counter
	verify                                    prometheus.Observer
	forwarded2xx                              prometheus.Counter
	secrets                                   []prometheus.Counter // by position
}

// forProvider resolves a provider's children; secrets is how many secrets
// it has.
func (m *metrics) forProvider(name string, secrets int) counters {
	c := counters{
		verified:     m.requests.WithLabelValues(name, "verified"),
		duplicate:    m.requests.WithLabelValues(name, "duplicate"),
		inFlight:     m.requests.WithLabelValues(name, "in_flight"),
		unverified:   m.requests.WithLabelValues(name, "unverified_forwarded"),
		verify:       m.verify.WithLabelValues(name),
		forwarded2xx: m.forwarded.WithLabelValues(name, "2xx"),
	}
	for i := range secrets {
		c.secrets = append(c.secrets, m.secrets.WithLabelValues(name, strconv.Itoa(i)))
	}
	return c
}

// secretMatched counts a request verified by the secret at position i.
func (c *counters) secretMatched(i int) {
	if i >= 0 && i < len(c.secrets) {
		c.secrets[i].Inc()
	}
}

func statusClass(status int) string {
	switch {
	case status >= 200 && status < 300:
		return "2xx"
	case status >= 300 && status < 400:
		return "3xx"
	case status >= 400 && status < 500:
		return "4xx"
	case status >= 500 && status < 600:
		return "5xx"
	}
	return "error"
}
