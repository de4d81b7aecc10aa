package caddymodule

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wagate/caddy-webhook/archive"
	"github.com/wagate/caddy-webhook/dedupe"
	"github.com/wagate/caddy-webhook/verify"
)

// TestArchivePooledHeaders: concurrent requests through ServeHTTP
// (verified, rejected, not POST, enforce off), each with its own number of
// headers on both sides of the pool's 64, each archive exactly their own
// headers: a pooled map reused while still referenced would show another
// request's.
func TestArchivePooledHeaders(t *testing.T) {
	for _, enforce := range []bool{true, false} {
		t.Run(fmt.Sprint("enforce=", enforce), func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			h := &Handler{Provider: verify.Wazera, Secrets: []string{"s0"}, Archive: &Archive{Dir: dir, Rejected: "body"}, Enforce: &enforce}
			if err := h.Provision(ctx); err != nil {
				t.Fatal(err)
			}
			defer h.Cleanup()
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				w.WriteHeader(200)
				return nil
			})
			const n = 600
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					body := []byte(`{"id":"evt_` + strconv.Itoa(i) + `","event":"message.received","timestamp":` + strconv.FormatInt(time.Now().Unix(), 10) + `,"data":{}}`)
					sig, _ := h.verifier.Sign(body, verify.SignOptions{})
					method := "POST"
					switch i % 3 {
					case 1:
						sig.Set("X-Wazera-Signature", "sha256=00") // a forgery
					case 2:
						method = "PUT"
					}
					r := httptest.NewRequest(method, "http://gw.example/wazera", bytes.NewReader(body))
					r.Header = sig.Clone()
					extra := (i * 7) % 90 // 0..89 headers besides: across the pool's 64
					r.Header.Set("X-Req", strconv.Itoa(i))
					r.Header.Set("X-Extra-Count", strconv.Itoa(extra))
					for j := range extra {
						r.Header.Set("X-Extra-"+strconv.Itoa(j), strconv.Itoa(i))
					}
					w := httptest.NewRecorder()
					r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
					h.ServeHTTP(w, r, next)
				})
			}
			wg.Wait()
			h.Archive.w.Sync()
			seen := 0
			err := (&archive.Reader{Dir: dir}).Scan(archive.Filter{}, func(rec *archive.Record) error {
				if rec.Kind != archive.KindRequest {
					return nil
				}
				seen++
				id := rec.Headers.Get("X-Req")
				extra, _ := strconv.Atoi(rec.Headers.Get("X-Extra-Count"))
				got := 0
				for k, v := range rec.Headers {
					if len(k) > 8 && k[:8] == "X-Extra-" && k != "X-Extra-Count" {
						got++
						if len(v) != 1 || v[0] != id {
							t.Errorf("record %s (request %s, %s): header %s = %v: another request's", rec.ID, id, rec.Verdict, k, v)
						}
					}
				}
				if got != extra {
					t.Errorf("record %s (request %s, %s): %d extra headers, want %d", rec.ID, id, rec.Verdict, got, extra)
				}
				return nil
			})
			if err != nil || seen != n {
				t.Errorf("%d request records (%v), want %d", seen, err, n)
			}
		})
	}
}

// TestArchiveWriteErrorClosed: with on_store_error closed, a verified
// event whose record cannot be written is answered 503, not forwarded, and
// its claim released, so the provider's retry gets through once the disk
// is back; a retry of an event already delivered is still answered as a
// duplicate (200), so the provider stops sending it.
func TestArchiveWriteErrorClosed(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Provider: verify.Wazera, Secrets: []string{"s0"}, Archive: &Archive{Dir: dir}, OnStoreError: "closed"}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	forwarded := 0
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		forwarded++
		w.WriteHeader(200)
		return nil
	})
	send := func(e signed) int { return serveOnce(h, e, next) }
	delivered, fresh := signedFor(t, h, "evt_delivered"), signedFor(t, h, "evt_fresh")
	if got := send(delivered); got != 200 || forwarded != 1 {
		t.Fatalf("first delivery: %d, forwarded %d", got, forwarded)
	}
	h.Archive.w.Close() // every write fails from now on
	if got := send(delivered); got != 200 || forwarded != 1 {
		t.Errorf("a duplicate with the archive failing: %d, forwarded %d; want 200 (duplicate) and not forwarded", got, forwarded)
	}
	if got := send(fresh); got != 503 || forwarded != 1 {
		t.Errorf("a new event with the archive failing: %d, forwarded %d; want 503 and not forwarded", got, forwarded)
	}
	c, err := h.store.Claim(context.Background(), dedupe.Key{Provider: verify.Wazera, ID: fresh.id}, time.Minute)
	if err != nil || c.Outcome != dedupe.Claimed {
		t.Errorf("the refused event's claim: %v %v, want it released (claimable again)", c.Outcome, err)
	}
}
