package sim

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Upstream is the customer's app in a drill: it records each event it
// accepted (answered 2xx), and can be told to fail.
type Upstream struct {
	FailRate float64       // answer 500 to this fraction of requests
	DropRate float64       // close the connection without an answer for this fraction
	Delay    time.Duration // wait this long before answering

	down     atomic.Bool
	requests atomic.Int64
	dropped  atomic.Int64
	mu       sync.Mutex
	accepted map[string]int // answered 2xx, by event id
	seen     map[string]int // every request, by event id
}

// NewUpstream returns a healthy upstream.
func NewUpstream() *Upstream { return &Upstream{accepted: map[string]int{}, seen: map[string]int{}} }

// SetDown makes every request fail with 503 while down.
func (u *Upstream) SetDown(down bool) { u.down.Store(down) }

// ServeHTTP implements http.Handler.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.requests.Add(1)
	id := r.Header.Get("Webhook-Event-Id")
	u.mu.Lock()
	u.seen[id]++
	u.mu.Unlock()
	io.Copy(io.Discard, r.Body)
	if u.Delay > 0 {
		time.Sleep(u.Delay)
	}
	x := rand.Float64()
	switch {
	case u.down.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case x < u.DropRate:
		u.dropped.Add(1)
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		w.WriteHeader(http.StatusBadGateway)
		return
	case x < u.DropRate+u.FailRate:
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	u.mu.Lock()
	u.accepted[id]++
	u.mu.Unlock()
	fmt.Fprint(w, "ok")
}

// Dropped returns how many connections the upstream closed without answering.
func (u *Upstream) Dropped() int64 { return u.dropped.Load() }

// Requests returns how many requests reached the upstream.
func (u *Upstream) Requests() int64 { return u.requests.Load() }

// Outcome compares what was sent with what the upstream accepted.
type Outcome struct {
	Sent      int
	Delivered int // accepted by the upstream
	Lost      int // never accepted...
	// ...of which the gateway is to blame: the upstream saw fewer requests
	// for the event than the provider made, so some attempt stopped at the
	// gateway (answered 2xx or as a duplicate without the upstream having it,
	// or dropped)
	LostAtGateway int
	// ...of which the upstream refused every attempt the provider made,
	// until the provider's retry schedule ran out
	RefusedByUpstream int
	Doubled           int // accepted more than once
}

// Compare counts, over the events of a report, those the upstream accepted
// once, more than once, or never, and why never.
func (u *Upstream) Compare(r Report) Outcome {
	u.mu.Lock()
	defer u.mu.Unlock()
	return Compare(r, u.accepted, u.seen)
}

// Compare counts, over the events of a report, those an app accepted
// (accepted: 2xx answers by event id) once, more than once, or never, and
// why never (seen: every request it got, by event id).
func Compare(r Report, accepted, seen map[string]int) Outcome {
	o := Outcome{Sent: len(r.IDs)}
	for _, id := range r.IDs {
		switch n := accepted[id]; {
		case n == 0:
			o.Lost++
			if seen[id] < r.PerEvent[id] {
				o.LostAtGateway++
			} else {
				o.RefusedByUpstream++
			}
		case n > 1:
			o.Doubled++
			o.Delivered++
		default:
			o.Delivered++
		}
	}
	return o
}
