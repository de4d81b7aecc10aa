package bench_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/caddy-webhook/bench/sim"
	"github.com/wagate/caddy-webhook/internal/redistest"
	"github.com/wagate/caddy-webhook/verify"
)

// Every drill delivers events through real gateway processes to an
// upstream that records what it accepted, then compares: sent, delivered
// (accepted once), lost (never), doubled (more than once), failed requests.

func redisDedupe(addr string, prefix string) string {
	return fmt.Sprintf("\t\t\tdedupe redis {\n\t\t\t\taddress %s\n\t\t\t\tkey_prefix %s\n\t\t\t\ttimeout 300ms\n\t\t\t}\n", addr, prefix)
}

// run delivers n events at rate per second and calls fault once the given
// share of them has started. It returns when every delivery chain ended.
func run(t *testing.T, s *sim.Sim, n int, at float64, fault func()) sim.Report {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done := make(chan sim.Report)
	go func() { done <- s.Run(ctx, n) }()
	if fault != nil {
		for s.Started() < int64(float64(n)*at) {
			time.Sleep(5 * time.Millisecond)
		}
		fault()
	}
	return <-done
}

// runAll runs one simulator per provider at once (each posts to its own
// path) and merges their reports.
func runAll(t *testing.T, gws []*gateway, n int, rate float64, copies int, at float64, fault func()) sim.Report {
	return runAllWith(t, gws, n, rate, copies, at, fault, nil)
}

// runAllWith is runAll with tweak applied to each provider's simulator
// before it starts: a drill's own compression or MaxWait.
func runAllWith(t *testing.T, gws []*gateway, n int, rate float64, copies int, at float64, fault func(), tweak func(*sim.Sim)) sim.Report {
	var sims []*sim.Sim
	for _, src := range sources(t, 0) {
		var urls []string
		for _, g := range gws {
			urls = append(urls, g.url(src.Provider))
		}
		// The retry schedules, compressed: an hour becomes 1 s (1.5 s at full
		// size). Outages stay well inside the compressed horizons (Zavu's,
		// the shortest, is 2.6 s), as real outages are inside real ones.
		compress := float64(size(3600, 2400))
		s := &sim.Sim{URLs: urls, Sources: []*sim.Source{src}, Concurrency: 8, Copies: copies, Compress: compress, Rate: rate / float64(len(providers))}
		if tweak != nil {
			tweak(s)
		}
		sims = append(sims, s)
	}
	per := n / len(sims)
	var wg sync.WaitGroup
	reports := make([]sim.Report, len(sims))
	var faultOnce sync.Once
	for i, s := range sims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var f func()
			if i == 0 && fault != nil {
				f = func() { faultOnce.Do(fault) }
			}
			reports[i] = run(t, s, per, at, f)
		}()
	}
	wg.Wait()
	merged := sim.Report{Statuses: map[string]int{}, PerEvent: map[string]int{}}
	for _, r := range reports {
		merged.Events += r.Events
		merged.Attempts += r.Attempts
		merged.Failed += r.Failed
		merged.Abandoned += r.Abandoned
		merged.IDs = append(merged.IDs, r.IDs...)
		for id, n := range r.PerEvent {
			merged.PerEvent[id] += n
		}
		for k, v := range r.Statuses {
			merged.Statuses[k] += v
		}
	}
	return merged
}

// Drill 1: Redis is killed mid-run and restarted. With on_store_error open
// no event is lost and no request fails; with closed none is lost (the 503s
// are retried). The gateway recovers without a restart.
func TestDrillRedisKilled(t *testing.T) {
	for _, mode := range []string{"open", "closed"} {
		t.Run(mode, func(t *testing.T) {
			rs, err := redistest.Start()
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Close()
			up, upURL := startUpstream(t)
			g := startGateway(t, gatewayConfig{Upstream: upURL, Dedupe: redisDedupe(rs.Addr, "drill1:"), Extra: "\t\t\ton_store_error " + mode + "\n"})
			n := size(500, 10000)
			r := runAll(t, []*gateway{g}, n, float64(size(250, 1000)), 1, 0.3, func() {
				rs.Stop()
				time.Sleep(outage())
				if err := rs.Restart(); err != nil {
					t.Error(err)
				}
			})
			o := up.Compare(r)
			checks := map[string]bool{"no event lost": o.Lost == 0, "every event sent": o.Sent == n,
				"dedupe works again after the restart, without restarting the gateway": replayCaught(t, g)}
			if mode == "open" {
				checks["no failed request with on_store_error open"] = r.Failed == 0
			} else {
				checks["the outage was answered 503 (and retried)"] = r.Statuses["503"] > 0
			}
			verdict(t, "redis-killed/"+mode, r, o, checks)
		})
	}
}

// outage is how long a drill keeps something down.
func outage() time.Duration { return time.Duration(size(300, 2000)) * time.Millisecond }

// replayCaught sends a fresh event twice and reports whether the second
// copy was answered as a duplicate.
func replayCaught(t *testing.T, g *gateway) bool {
	e := sources(t, 0)[0].Next()
	var last string
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest(http.MethodPost, g.url(e.Provider), bytes.NewReader(e.Body))
		req.Header = e.Sign()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = string(b)
	}
	return strings.Contains(last, `"status":"duplicate"`)
}

// Drill 2: the upstream flaps: 10% of requests get a 500, 5% a dropped
// connection, and it is down for a while. No event is lost at the gateway
// (every attempt the provider makes reaches the upstream until one is
// accepted), and none is delivered twice after the upstream accepted it.
// An event the upstream refuses at every attempt of the provider's whole
// schedule is counted apart: no gateway can deliver it.
func TestDrillUpstreamFlapping(t *testing.T) {
	up, upURL := startUpstream(t)
	up.FailRate, up.DropRate = 0.10, 0.05
	g := startGateway(t, gatewayConfig{Upstream: upURL})
	n := size(500, 10000)
	r := runAll(t, []*gateway{g}, n, float64(size(250, 1000)), 1, 0.4, func() {
		up.SetDown(true)
		time.Sleep(outage())
		up.SetDown(false)
	})
	o := up.Compare(r)
	verdict(t, "upstream-flapping", r, o, map[string]bool{
		"no event lost at the gateway":                                         o.LostAtGateway == 0,
		"every undelivered event was refused by the upstream at every attempt": o.Lost == o.RefusedByUpstream,
		"none delivered twice after a 2xx":                                     o.Doubled == 0,
		// dropped connections mostly come back as the transport's own retry,
		// so they show as drops at the upstream rather than as 502s
		"the upstream failed in every way": r.Statuses["500"] > 0 && r.Statuses["503"] > 0 && up.Dropped() > 0,
		"every event sent":                 o.Sent == n,
	})
}

// Drill 3: the gateway is killed with SIGKILL mid-run and restarted, with
// Redis dedupe. No event is lost, and the claims it abandoned free
// themselves within the in-flight TTL.
func TestDrillGatewayKilled(t *testing.T) {
	rs, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	up, upURL := startUpstream(t)
	up.Delay = 20 * time.Millisecond // so that claims are in flight when it dies
	inFlight := time.Duration(size(1, 2)) * time.Second
	g := startGateway(t, gatewayConfig{Upstream: upURL, Dedupe: redisDedupe(rs.Addr, "drill3:"), Extra: fmt.Sprintf("\t\t\tin_flight_ttl %s\n", inFlight)})
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rc.Close()
	var abandoned []string
	var killedAt time.Time
	n := size(500, 10000)
	r := runAll(t, []*gateway{g}, n, float64(size(250, 1000)), 1, 0.4, func() {
		g.kill()
		killedAt = time.Now()
		ctx := context.Background()
		keys, _ := rc.Keys(ctx, "drill3:*").Result()
		for _, k := range keys {
			if v, _ := rc.Get(ctx, k).Result(); v != "done" && v != "" {
				abandoned = append(abandoned, k)
			}
		}
		time.Sleep(outage())
		g.start()
	})
	// every claim the dead gateway held is gone or done by in-flight TTL
	time.Sleep(time.Until(killedAt.Add(inFlight + 500*time.Millisecond)))
	stillHeld := 0
	for _, k := range abandoned {
		v, _ := rc.Get(context.Background(), k).Result()
		if v != "" && v != "done" {
			if ttl, _ := rc.PTTL(context.Background(), k).Result(); ttl > inFlight {
				stillHeld++
			}
		}
	}
	o := up.Compare(r)
	t.Logf("%d claims in flight at the kill; doubled events are those the upstream accepted just before the kill, whose commit never happened (at-least-once)", len(abandoned))
	verdict(t, "gateway-killed", r, o, map[string]bool{
		"no event lost":                               o.Lost == 0,
		"claims were in flight at the kill":           len(abandoned) > 0,
		"abandoned claims freed within in_flight_ttl": stillHeld == 0,
		"every event sent":                            o.Sent == n,
	})
}

// Drill 4: caddy reload with a changed secret list, several times, under
// load: no failed request, none lost or doubled.
func TestDrillReloadUnderLoad(t *testing.T) {
	up, upURL := startUpstream(t)
	cfg := gatewayConfig{Upstream: upURL}
	g := startGateway(t, cfg)
	n := size(1000, 10000)
	reloads := 0
	r := runAll(t, []*gateway{g}, n, float64(size(250, 1000)), 1, 0.2, func() {
		for i := 0; i < 4; i++ {
			cfg.ExtraSecret = fmt.Sprintf("whsec_cm90YXRlZC0%d", i)
			g.reload(cfg)
			reloads++
			time.Sleep(time.Duration(size(300, 1500)) * time.Millisecond)
		}
	})
	o := up.Compare(r)
	verdict(t, "reload-under-load", r, o, map[string]bool{
		"no failed request": r.Failed == 0,
		"no event lost":     o.Lost == 0,
		"no event doubled":  o.Doubled == 0,
		"four reloads done": reloads == 4,
	})
}

// Drill 5: every event is sent 5 times at once, across two gateway
// instances sharing Redis: each is delivered exactly once.
func TestDrillDuplicateStorm(t *testing.T) {
	rs, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	up, upURL := startUpstream(t)
	up.Delay = 5 * time.Millisecond
	cfg := gatewayConfig{Upstream: upURL, Dedupe: redisDedupe(rs.Addr, "drill5:")}
	a, b := startGateway(t, cfg), startGateway(t, cfg)
	n := size(300, 10000)
	r := runAll(t, []*gateway{a, b}, n, float64(size(150, 500)), 5, 0, nil)
	o := up.Compare(r)
	verdict(t, "duplicate-storm", r, o, map[string]bool{
		"each delivered exactly once":   o.Delivered == n && o.Doubled == 0 && o.Lost == 0,
		"copies were turned away":       r.Statuses["409"]+r.Statuses["200"] >= 4*n,
		"upstream saw one request each": up.Requests() == int64(n),
	})
}

// Drill 6: hostile input at volume: forged, stale, truncated, oversized and
// malformed requests at full speed. All rejected with the right status,
// none forwarded, and the gateway's memory flat afterwards.
func TestDrillHostileInput(t *testing.T) {
	up, upURL := startUpstream(t)
	g := startGateway(t, gatewayConfig{Upstream: upURL, Extra: "\t\t\tmax_body 64KiB\n"})
	src := sources(t, 0)
	type kind struct {
		name   string
		status int
		build  func(e *sim.Event) (string, []byte, http.Header)
	}
	kinds := []kind{
		{"forged", 401, func(e *sim.Event) (string, []byte, http.Header) {
			b := bytes.Replace(e.Body, []byte(`"`), []byte(`" `), 1)
			return e.Provider, b, e.Sign()
		}},
		{"stale", 401, func(e *sim.Event) (string, []byte, http.Header) {
			v, _ := verify.New(verify.Wazera, verify.Options{Secrets: []string{secrets[verify.Wazera]}})
			body := []byte(`{"event":"message.read","timestamp":"` + time.Now().Add(-31*time.Hour).UTC().Format(time.RFC3339) + `","data":{"message_id":"` + e.ID + `"}}`)
			h, _ := v.Sign(body, verify.SignOptions{})
			return verify.Wazera, body, h
		}},
		{"truncated", 401, func(e *sim.Event) (string, []byte, http.Header) {
			return e.Provider, e.Body[:len(e.Body)/2], e.Sign()
		}},
		{"oversized", 413, func(e *sim.Event) (string, []byte, http.Header) {
			return e.Provider, bytes.Repeat([]byte("x"), 70<<10), e.Sign()
		}},
		{"malformed", 400, func(e *sim.Event) (string, []byte, http.Header) {
			v, _ := verify.New(verify.Vobiz, verify.Options{Secrets: []string{secrets[verify.Vobiz]}})
			body := []byte(`{"event_id":"x","occurred_at":` + strings.Repeat("[", 50))
			h, _ := v.Sign(body, verify.SignOptions{})
			return verify.Vobiz, body, h
		}},
		{"unsigned", 401, func(e *sim.Event) (string, []byte, http.Header) {
			return e.Provider, e.Body, http.Header{"Content-Type": {"application/json"}}
		}},
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	// warm up, then take the baseline
	send := func(k kind) (int, error) {
		p, body, h := k.build(src[rand.IntN(len(src))].Next())
		req, _ := http.NewRequest(http.MethodPost, g.url(p), bytes.NewReader(body))
		req.Header = h
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for i := 0; i < 200; i++ {
		send(kinds[i%len(kinds)])
	}
	time.Sleep(time.Second)
	heapBefore := g.metric("go_memstats_heap_inuse_bytes")

	n := size(6000, 100000)
	var wrong, errs atomic.Int64
	var mu sync.Mutex
	statuses := map[string]int{}
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				k := kinds[int(i)%len(kinds)]
				status, err := send(k)
				mu.Lock()
				statuses[fmt.Sprintf("%s:%d", k.name, status)]++
				mu.Unlock()
				if err != nil {
					errs.Add(1)
				} else if status != k.status {
					wrong.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	time.Sleep(2 * time.Second)
	heapAfter := g.metric("go_memstats_heap_inuse_bytes")
	r := sim.Report{Attempts: n, Failed: n, Statuses: map[string]int{}}
	for k, v := range statuses {
		r.Statuses[k] = v
	}
	line := fmt.Sprintf("drill %-22s sent %6d  forwarded %d  wrong status %d  transport errors %d  heap in use %.1f MB before, %.1f MB after, peak RSS %.0f MB  %v",
		"hostile-input", n, up.Requests(), wrong.Load(), errs.Load(), heapBefore/1e6, heapAfter/1e6, g.peakRSS(), statuses)
	fmt.Fprintln(stderr, line)
	t.Log(line)
	checks := map[string]bool{
		"every request rejected with its status": wrong.Load() == 0 && errs.Load() == 0,
		"none forwarded":                         up.Requests() == 0,
		"heap flat afterwards (within 32 MB)":    heapBefore > 0 && heapAfter < heapBefore+32e6,
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("FAIL: %s", what)
		}
	}
	if !t.Failed() {
		fmt.Fprintf(stderr, "drill %-22s PASS\n", "hostile-input")
	}
}
