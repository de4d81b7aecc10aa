// Package sim plays the providers' side for the load tool and the fault
// drills: it makes unique, correctly signed events for any provider, and
// delivers them the way the providers do, retrying any non-2xx answer on a
// compressed copy of the provider's retry schedule (from PROVIDERS.md).
package sim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wagate/caddy-webhook/verify"
	"github.com/wagate/caddy-webhook/verify/samples"
)

// Schedules are the delays between attempts after the first, per provider.
var Schedules = map[string][]time.Duration{
	verify.Wazera:  {time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 24 * time.Hour},
	verify.Zavu:    {0, time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour},
	verify.WAStack: {time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour},
	// Svix's schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
	verify.Wazapin: {5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour},
	// "retries for up to 24 h": exponential within that
	verify.Vobiz: {time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour},
}

// Source makes unique signed events of one provider.
type Source struct {
	Provider string
	v        *verify.Verifier
	event    string
	pad      int    // bytes of padding to reach the body size
	run      string // makes ids unique across runs
	seq      atomic.Uint64
}

// NewSource returns a source of events of provider, each body grown to
// size bytes (0: the sample as it is) with a long message text.
func NewSource(provider, secret string, size int) (*Source, error) {
	v, err := verify.New(provider, verify.Options{Secrets: []string{secret}})
	if err != nil {
		return nil, err
	}
	s := &Source{Provider: provider, v: v, event: samples.Events(provider)[0], run: fmt.Sprintf("%x", time.Now().UnixNano())}
	if size > 0 {
		probe, err := samples.Body(provider, s.event, samples.Values{ID: s.id(0), Time: time.Now()})
		if err != nil {
			return nil, err
		}
		if s.pad = size - len(probe) - len(`"note":"",`); s.pad < 0 {
			return nil, fmt.Errorf("%s sample is %d bytes, more than %d", provider, len(probe), size)
		}
	}
	return s, nil
}

func (s *Source) id(n uint64) string { return fmt.Sprintf("%s%08d", s.run, n) }

// Event is one event, ready to be delivered.
type Event struct {
	Provider string
	ID       string // the id the gateway gives it
	Body     []byte
	src      *Source
	delivery string // the delivery id, for schemes that sign one
}

// Next returns a new, unique event, with the id the gateway will give it.
func (s *Source) Next() *Event {
	e := s.Quick()
	ev, err := s.v.Verify(e.Sign(), e.Body)
	if err != nil {
		panic(fmt.Sprintf("sim: own event does not verify: %v", err))
	}
	e.ID = ev.ID
	return e
}

// Quick returns a new, unique event without working out its id, for load.
func (s *Source) Quick() *Event {
	n := s.seq.Add(1)
	id := s.id(n)
	body, err := samples.Body(s.Provider, s.event, samples.Values{ID: id, Time: time.Now()})
	if err != nil {
		panic(err)
	}
	if s.pad > 0 {
		body = append([]byte(`{"note":"`+padding(s.pad)+`",`), body[1:]...)
	}
	return &Event{Provider: s.Provider, Body: body, src: s, delivery: "msg_" + id}
}

// Sign returns the headers of one delivery attempt: schemes that sign the
// attempt time get a fresh timestamp; the delivery id stays the same.
func (e *Event) Sign() http.Header {
	h, err := e.src.v.Sign(e.Body, verify.SignOptions{ID: e.delivery})
	if err != nil {
		panic(err)
	}
	h.Set("Content-Type", "application/json")
	// lets Go's transport resend the POST when a reused keep-alive
	// connection turns out closed, as webhook senders' clients do
	h.Set("Idempotency-Key", e.delivery)
	return h
}

var padCache sync.Map

func padding(n int) string {
	if p, ok := padCache.Load(n); ok {
		return p.(string)
	}
	const line = "Hello, I would like to know whether the order I placed yesterday has shipped yet, thank you. "
	p := strings.Repeat(line, n/len(line)+1)[:n]
	padCache.Store(n, p)
	return p
}

// Sim delivers events like a provider.
type Sim struct {
	URLs        []string      // where to deliver; attempts rotate across them (several gateway instances)
	Sources     []*Source     // events alternate between these providers
	Concurrency int           // events delivered at once
	Copies      int           // copies of each event delivered at once, each retrying on its own (default 1)
	Compress    float64       // divides the retry schedules (default 3600: an hour becomes a second)
	MaxWait     time.Duration // stop retrying an event after this long (default: its whole compressed schedule)
	Rate        float64       // new events per second (0: as fast as the workers take them)
	Client      *http.Client
	sent        atomic.Int64
}

// Started returns how many events have been handed to the workers so far.
func (s *Sim) Started() int64 { return s.sent.Load() }

// Report is what happened on the sending side.
type Report struct {
	Events    int            // distinct events sent
	Attempts  int            // HTTP requests made
	Failed    int            // attempts without a 2xx answer (error statuses and transport errors)
	Abandoned int            // events no copy of which got a 2xx before the schedule ran out
	Statuses  map[string]int // answers by status ("error" for transport errors)
	IDs       []string       // the events' ids, for comparing with what the upstream received
	PerEvent  map[string]int // attempts made for each event id
	Errors    map[string]int // transport errors by their text, so a drill can say what failed
}

// Run delivers n events and waits for every delivery chain to end.
func (s *Sim) Run(ctx context.Context, n int) Report {
	if s.Copies < 1 {
		s.Copies = 1
	}
	if s.Compress == 0 {
		s.Compress = 3600
	}
	if s.Client == nil {
		s.Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
	}
	var mu sync.Mutex
	r := Report{Statuses: map[string]int{}, PerEvent: map[string]int{}, Errors: map[string]int{}}
	events := make(chan *Event)
	go func() {
		defer close(events)
		start := time.Now()
		for i := 0; i < n; i++ {
			if s.Rate > 0 {
				if wait := time.Until(start.Add(time.Duration(float64(i) / s.Rate * float64(time.Second)))); wait > 0 {
					time.Sleep(wait)
				}
			}
			select {
			case events <- s.Sources[i%len(s.Sources)].Next():
				s.sent.Add(1)
			case <-ctx.Done():
				return
			}
		}
	}()
	var urlN atomic.Uint64
	var wg sync.WaitGroup
	for w := 0; w < max(1, s.Concurrency); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range events {
				var ok atomic.Bool
				var copies sync.WaitGroup
				for c := 0; c < s.Copies; c++ {
					copies.Add(1)
					go func() {
						defer copies.Done()
						if s.deliver(ctx, e, &urlN, &mu, &r) {
							ok.Store(true)
						}
					}()
				}
				copies.Wait()
				mu.Lock()
				r.Events++
				r.IDs = append(r.IDs, e.ID)
				if !ok.Load() {
					r.Abandoned++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return r
}

// deliver runs one delivery chain: the first attempt, then retries on the
// compressed schedule until a 2xx. It reports whether one came.
func (s *Sim) deliver(ctx context.Context, e *Event, urlN *atomic.Uint64, mu *sync.Mutex, r *Report) bool {
	schedule := Schedules[e.Provider]
	start := time.Now()
	for attempt := 0; ; attempt++ {
		url := s.URLs[int(urlN.Add(1))%len(s.URLs)]
		status, err := s.post(ctx, url, e)
		mu.Lock()
		if err != nil {
			r.Errors[err.Error()]++
		}
		r.Attempts++
		r.PerEvent[e.ID]++
		r.Statuses[status]++
		if status[0] != '2' {
			r.Failed++
		}
		mu.Unlock()
		if status[0] == '2' {
			return true
		}
		if attempt >= len(schedule) || ctx.Err() != nil || (s.MaxWait > 0 && time.Since(start) > s.MaxWait) {
			return false
		}
		select {
		case <-time.After(time.Duration(float64(schedule[attempt]) / s.Compress)):
		case <-ctx.Done():
			return false
		}
	}
}

func (s *Sim) post(ctx context.Context, url string, e *Event) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(e.Body))
	if err != nil {
		return "error", err
	}
	req.Header = e.Sign()
	resp, err := s.Client.Do(req)
	if err != nil {
		return "error", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode), nil
}
