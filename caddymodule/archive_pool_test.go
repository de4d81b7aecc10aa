package caddymodule

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// TestPooledHeadIsCopied: with the archive on, the CloudEvent head comes
// from a pool and goes back when ServeHTTP returns; the forwarded body must
// not refer to it. The next handler hands each request to goroutines that
// read its body (and GetBody, as a retry would) after ServeHTTP returned,
// while 400 requests, 8 at a time, reuse the pool: small bodies, large ones
// built in place, and heads longer than the room before the body. Each
// must read as its own CloudEvent.
func TestPooledHeadIsCopied(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Provider: verify.Wazera, Secrets: []string{"s0"}, Archive: &Archive{Dir: dir}, Dedupe: &Dedupe{Store: "off"}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	var late sync.WaitGroup
	var forwarded atomic.Int64
	type job struct {
		want []byte
		r    *http.Request
		id   int
	}
	jobs := make(chan job, 1024)
	var checkers sync.WaitGroup
	for range 4 {
		checkers.Go(func() {
			for j := range jobs {
				time.Sleep(time.Millisecond)
				got, _ := io.ReadAll(j.r.Body)
				rc, _ := j.r.GetBody()
				again, _ := io.ReadAll(rc)
				if !bytes.Equal(got, j.want) || !bytes.Equal(again, j.want) {
					t.Errorf("request %d: forwarded body differs from its own event (len %d/%d want %d)", j.id, len(got), len(again), len(j.want))
				}
				late.Done()
			}
		})
	}
	var wg sync.WaitGroup
	// 8 at a time, so that the pool's heads are reused while earlier
	// requests' bodies wait to be read
	sem := make(chan struct{}, 8)
	for i := range 400 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			now := strconv.FormatInt(time.Now().Unix(), 10)
			text := strings.Repeat("t"+strconv.Itoa(i%10), 10)
			if i%3 == 0 {
				text = strings.Repeat(`Halo kak \"x\" é ✓ `+strconv.Itoa(i), 150) // head > headroom
			}
			pad := ""
			if i%2 == 0 {
				pad = strings.Repeat("n", 70<<10) // large body: in place
			}
			body := []byte(`{"id":"evt_` + strconv.Itoa(i) + `","event":"message.received","timestamp":` + now + `,"data":{"message_id":"m-` + strconv.Itoa(i) + `","text":"` + text + `"},"note":"` + pad + `"}`)
			sig, err := h.verifier.Sign(body, verify.SignOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			ev, err := h.verifier.Verify(sig, append([]byte(nil), body...))
			if err != nil {
				t.Error(err)
				return
			}
			want := ev.AppendCloudEvent(nil)
			r := httptest.NewRequest("POST", "http://gw.example/wazera", bytes.NewReader(body))
			r.Header = sig.Clone()
			w := httptest.NewRecorder()
			r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				forwarded.Add(1)
				late.Add(1)
				jobs <- job{want, r, i}
				w.WriteHeader(200)
				return nil
			})
			if err := h.ServeHTTP(w, r, next); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	late.Wait()
	close(jobs)
	checkers.Wait()
	if forwarded.Load() != 400 {
		t.Errorf("%d of 400 requests forwarded", forwarded.Load())
	}
}
