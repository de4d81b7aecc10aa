package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wagate/caddy-webhook/verify"
)

// forwarding sends signed Wazera events of about size bytes through one
// provisioned handler (no dedupe, no archive).
type forwarding struct {
	t *testing.T
	h *Handler
	n int
}

func newForwarding(t *testing.T) *forwarding {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	h := &Handler{Provider: verify.Wazera, Secrets: []string{"s0"}, Dedupe: &Dedupe{Store: "off"}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Cleanup() })
	return &forwarding{t: t, h: h}
}

// send runs one event of size bytes through ServeHTTP to next, and
// returns the CloudEvent that the upstream must receive for it, computed
// by the verifier from a copy of the body.
func (f *forwarding) send(size int, next caddyhttp.HandlerFunc) []byte {
	want, _ := f.measure(size, next)
	return want
}

// measure is send, and also returns the bytes allocated during ServeHTTP.
func (f *forwarding) measure(size int, next caddyhttp.HandlerFunc) ([]byte, uint64) {
	f.n++
	now := strconv.FormatInt(time.Now().Unix(), 10)
	body := []byte(`{"id":"evt_` + strconv.Itoa(f.n) + `","event":"message.received","timestamp":` + now +
		`,"data":{"message_id":"m-` + strconv.Itoa(f.n) + `","text":"hi"},"note":"` + strings.Repeat(strconv.Itoa(f.n%10), size) + `"}`)
	sig, err := f.h.verifier.Sign(body, verify.SignOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	ev, err := f.h.verifier.Verify(sig, append([]byte(nil), body...))
	if err != nil {
		f.t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "http://gw.example/wazera", bytes.NewReader(body))
	r.Header = sig.Clone()
	w := httptest.NewRecorder()
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
	want := ev.AppendCloudEvent(nil)
	// next is the upstream's side; its answer is a 200 (the handler
	// refuses an event that nothing answered)
	answer := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if err := next(w, r); err != nil {
			return err
		}
		w.WriteHeader(http.StatusOK)
		return nil
	})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := f.h.ServeHTTP(w, r, answer); err != nil {
		f.t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if w.Code != http.StatusOK {
		f.t.Fatalf("status %d", w.Code)
	}
	return want, after.TotalAlloc - before.TotalAlloc
}

// TestForwardedBufferLifetime: the buffer a forwarded event is built in
// goes back to the pool once the handler has returned and every reader of
// it was closed, as Caddy's reverse_proxy closes it, and not before: a
// body still open, or resent through GetBody, after the handler returned
// reads as its own event while later requests reuse the pool.
func TestForwardedBufferLifetime(t *testing.T) {
	const size = 3000 // fits a pooled buffer
	sink := make([]byte, 2*size)
	drain := func(r io.Reader) []byte { // reads without allocating
		n, _ := io.ReadFull(r, sink)
		return sink[:n]
	}
	// the median of 21 requests' allocations inside ServeHTTP
	allocated := func(f *forwarding, next caddyhttp.HandlerFunc) uint64 {
		f.send(size, next) // warm
		var each []uint64
		for range 21 {
			_, n := f.measure(size, next)
			each = append(each, n)
		}
		slices.Sort(each)
		return each[len(each)/2]
	}

	t.Run("closed", func(t *testing.T) {
		f := newForwarding(t)
		var got []byte
		var readAfterClose error
		perRequest := allocated(f, func(w http.ResponseWriter, r *http.Request) error {
			drain(r.Body)
			r.Body.Close()
			_, readAfterClose = r.Body.Read(make([]byte, 1))
			return nil
		})
		if perRequest >= size {
			t.Errorf("%d bytes allocated a request with a %d-byte body read and closed: its buffer did not go back to the pool", perRequest, size)
		}
		if !errors.Is(readAfterClose, http.ErrBodyReadAfterClose) {
			t.Errorf("a read after Close returned %v, want http.ErrBodyReadAfterClose", readAfterClose)
		}
		want := f.send(size, func(w http.ResponseWriter, r *http.Request) error {
			got, _ = io.ReadAll(r.Body)
			return r.Body.Close()
		})
		if !bytes.Equal(got, want) {
			t.Errorf("forwarded %d bytes, not the event's CloudEvent (%d bytes)", len(got), len(want))
		}
	})

	t.Run("open", func(t *testing.T) {
		// other tests leave buffers in the pool: what shows that none comes
		// back is that no two open bodies share one
		f := newForwarding(t)
		seen := map[*byte]bool{}
		for i := range 40 {
			f.send(size, func(w http.ResponseWriter, r *http.Request) error {
				drain(r.Body) // never closed
				p := unsafe.SliceData(r.Body.(*reader).b.out)
				if seen[p] {
					t.Errorf("request %d: forwarded from the buffer of an earlier request whose body is still open", i)
				}
				seen[p] = true
				return nil
			})
		}
	})

	t.Run("late readers", func(t *testing.T) {
		// the transport may close, or resend, after the handler returned
		f := newForwarding(t)
		type late struct {
			want   []byte
			body   io.ReadCloser
			resend func() (io.ReadCloser, error)
		}
		var kept []late
		for i := range 40 {
			var l late
			l.want = f.send(size+i, func(w http.ResponseWriter, r *http.Request) error {
				l.body, l.resend = r.Body, r.GetBody
				if i%2 == 1 { // the first attempt read and closed, a resend pending
					io.ReadAll(r.Body)
					r.Body.Close()
					rc, err := r.GetBody()
					if err != nil {
						t.Fatal(err)
					}
					l.body = rc
				}
				return nil
			})
			kept = append(kept, l)
			// requests in between, read and closed, reuse what the pool has
			for range 3 {
				f.send(size+i, func(w http.ResponseWriter, r *http.Request) error {
					io.ReadAll(r.Body)
					return r.Body.Close()
				})
			}
		}
		var wg sync.WaitGroup
		for i, l := range kept {
			wg.Go(func() {
				got, _ := io.ReadAll(l.body)
				if !bytes.Equal(got, l.want) {
					t.Errorf("request %d: read after the handler returned: %d bytes, not its CloudEvent (%d bytes)", i, len(got), len(l.want))
				}
				l.body.Close()
				if _, err := l.resend(); !errors.Is(err, http.ErrBodyReadAfterClose) {
					t.Errorf("request %d: GetBody once every reader was closed returned %v, want http.ErrBodyReadAfterClose", i, err)
				}
			})
		}
		wg.Wait()
	})
}

// TestCloseDuringRead: Go's HTTP/2 client closes a request body from a
// goroutine of its own (an early answer, a reset stream, a cancelled
// request) while its writer may be inside a Read. Whatever that Read
// returns is the event's own bytes, never those of a later request that
// got the buffer from the pool (with -race, the detector also sees any
// copy out of a buffer already handed back).
func TestCloseDuringRead(t *testing.T) {
	f := newForwarding(t)
	for i := range 2000 {
		var wg sync.WaitGroup
		var got []byte
		want := f.send(3000, func(w http.ResponseWriter, r *http.Request) error {
			body := r.Body
			started := make(chan struct{})
			wg.Go(func() { // the writer
				p := make([]byte, 64)
				close(started)
				for {
					n, err := body.Read(p)
					got = append(got, p[:n]...)
					if err != nil {
						return
					}
				}
			})
			<-started
			go body.Close() // the client's abort
			return nil
		})
		for range 3 { // later requests reuse what the pool has
			f.send(3000, func(w http.ResponseWriter, r *http.Request) error {
				io.Copy(io.Discard, r.Body)
				return r.Body.Close()
			})
		}
		wg.Wait()
		if !bytes.HasPrefix(want, got) {
			t.Fatalf("attempt %d: a read racing Close returned bytes that are not the event's", i)
		}
	}
}
