package caddymodule_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wagate/caddy-webhook/caddymodule"
	"github.com/wagate/caddy-webhook/verify"
	"github.com/wagate/caddy-webhook/verify/samples"
)

// BenchmarkServeHTTP measures the handler's own work per request, without
// the network: read the body, verify, claim, build the CloudEvent, forward
// to a next handler that reads the body, closes it (as reverse_proxy does)
// and answers 200, commit. The baseline is the same request through a next
// handler alone.
func BenchmarkServeHTTP(b *testing.B) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &caddymodule.Handler{Provider: verify.Zavu, Secrets: []string{secrets[verify.Zavu]}}
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	defer h.Cleanup()
	v := signer(b, verify.Zavu)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		var buf [4096]byte
		for {
			if _, err := r.Body.Read(buf[:]); err != nil {
				break
			}
		}
		r.Body.Close()
		w.WriteHeader(http.StatusOK)
		return nil
	})
	type req struct {
		body []byte
		h    http.Header
	}
	// unique events, signed before timing, fresh for every run (the dedupe
	// store remembers the last run's)
	events := func(n int) []req {
		reqs := make([]req, n)
		run := time.Now().UnixNano()
		for i := range reqs {
			body, _ := samples.Body(verify.Zavu, "message.inbound", samples.Values{ID: fmt.Sprintf("b%d-%06d", run, i), Time: time.Now()})
			hdr, _ := v.Sign(body, verify.SignOptions{})
			reqs[i] = req{body, hdr}
		}
		return reqs
	}
	serve := func(b *testing.B, handler func(w http.ResponseWriter, r *http.Request) error) {
		reqs := events(b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			q := reqs[i]
			r := httptest.NewRequest(http.MethodPost, "/zavu", bytes.NewReader(q.body))
			r.Header = q.h.Clone()
			w := httptest.NewRecorder()
			repl := caddy.NewReplacer()
			r = caddyhttp.PrepareRequest(r, repl, w, nil)
			if err := handler(w, r); err != nil || w.Code != 200 {
				b.Fatal(err, w.Code)
			}
		}
	}
	b.Run("next-only", func(b *testing.B) { serve(b, next.ServeHTTP) })
	b.Run("webhook_verify", func(b *testing.B) {
		serve(b, func(w http.ResponseWriter, r *http.Request) error { return h.ServeHTTP(w, r, next) })
	})
}
