package dedupe

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/caddy-webhook/internal/redistest"
)

// gate is a go-redis hook that holds every SET, alone or in a pipeline,
// until the test lets it through: a Redis that has the command and has
// not answered yet. It ignores the command's context, as a command
// already written cannot be taken back.
type gate struct {
	entered chan held
	off     atomic.Bool // lets every command through
}

type held struct {
	keys    []string
	release chan struct{}
}

func (g *gate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "set" {
			g.hold([]redis.Cmder{cmd})
		}
		return next(ctx, cmd)
	}
}

func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return c.Name() != "set" }) {
			g.hold(cmds) // a batch of SETs, not a connection's set-up
		}
		return next(ctx, cmds)
	}
}

func (g *gate) hold(cmds []redis.Cmder) {
	if g.off.Load() {
		return
	}
	h := held{release: make(chan struct{})}
	for _, c := range cmds {
		h.keys = append(h.keys, fmt.Sprint(c.Args()[1]))
	}
	g.entered <- h
	<-h.release
}

// gatedStore returns a store over its own redis-server, or its own
// 3-master Cluster, whose SETs wait at the returned gate.
func gatedStore(t *testing.T, kind string, timeout time.Duration) (*Redis, *gate) {
	t.Helper()
	var addrs []string
	switch kind {
	case "single":
		srv, err := redistest.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		addrs = []string{srv.Addr}
	case "cluster":
		c, err := redistest.StartCluster()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		addrs = c.Addrs()
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	// the cluster's slot map first, so that no SET waits behind it
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	g := &gate{entered: make(chan held, 64)}
	client.AddHook(g)
	r := NewRedis(client, "gated:", timeout)
	t.Cleanup(func() { r.Close() })
	return r, g
}

// onEach runs test against a single server and a Cluster.
func onEach(t *testing.T, test func(t *testing.T, kind string)) {
	for _, kind := range []string{"single", "cluster"} {
		t.Run(kind, func(t *testing.T) { test(t, kind) })
	}
}

// waitFor polls cond until it holds, for at most 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

type result struct {
	id  string
	c   Claim
	err error
}

func claimAsync(r *Redis, ctx context.Context, id string, out chan<- result) {
	go func() {
		c, err := r.Claim(ctx, Key{Provider: "p", ID: id}, time.Minute)
		out <- result{id, c, err}
	}()
}

// occupy starts one claim that goes straight to Redis and one per
// pipeline executor, and returns them held at the gate: from then on a
// claim waits in the queue.
func occupy(t *testing.T, r *Redis, g *gate, out chan<- result) []held {
	t.Helper()
	var hs []held
	for i := 0; i <= executors; i++ {
		claimAsync(r, context.Background(), fmt.Sprint("occupier-", i), out)
		hs = append(hs, <-g.entered)
	}
	return hs
}

func (r *Redis) exists(t *testing.T, id string) bool {
	t.Helper()
	n, err := r.client.Exists(context.Background(), RedisKey(r.prefix, Key{Provider: "p", ID: id})).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestGoneCallerClaimIsNotSent: a claim whose caller gave up while it
// waited in the queue (the caller got an error) is never sent: sent
// later, it would be an in-flight key that answers every retry 409 until
// in_flight_ttl runs out.
func TestGoneCallerClaimIsNotSent(t *testing.T) { onEach(t, goneCallerClaimIsNotSent) }

func goneCallerClaimIsNotSent(t *testing.T, kind string) {
	r, g := gatedStore(t, kind, 5*time.Second)
	out := make(chan result, 16)
	hs := occupy(t, r, g, out)

	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan result, 1)
	claimAsync(r, ctx, "gone", gone)
	waitFor(t, "the claim to wait in the queue", func() bool { return len(r.sets.queue) == 1 })
	cancel()
	if res := <-gone; !errors.Is(res.err, ErrUnavailable) || !errors.Is(res.err, context.Canceled) {
		t.Fatalf("cancelled claim: %v, want ErrUnavailable and context.Canceled", res.err)
	}
	claimAsync(r, context.Background(), "after", out) // queued behind it
	waitFor(t, "the next claim to queue", func() bool { return len(r.sets.queue) == 2 })

	close(hs[1].release) // one executor is free: it takes what is queued
	next := <-g.entered
	if slices.Contains(next.keys, RedisKey(r.prefix, Key{Provider: "p", ID: "gone"})) {
		t.Errorf("the cancelled claim was sent after its caller got an error: %v", next.keys)
	}
	close(next.release)
	for _, h := range append(hs[:1:1], hs[2:]...) {
		close(h.release)
	}
	for range executors + 2 {
		if res := <-out; res.err != nil || res.c.Outcome != Claimed {
			t.Errorf("claim %s: %v %v, want claimed", res.id, res.c.Outcome, res.err)
		}
	}
	if r.exists(t, "gone") {
		t.Error("the cancelled claim's key is in Redis: retries would be answered 409")
	}
}

// TestBatchHonoursEachDeadline: a pipeline lives as long as its most
// patient caller, not its least: with timeout 2s, a Redis answering after
// 600 ms (more than the 500 ms default) serves every caller that still
// waits, and a caller near its deadline, batched with them, fails alone.
// Its claim, written after it gave up, is deleted again.
func TestBatchHonoursEachDeadline(t *testing.T) { onEach(t, batchHonoursEachDeadline) }

func batchHonoursEachDeadline(t *testing.T, kind string) {
	r, g := gatedStore(t, kind, 2*time.Second)
	out := make(chan result, 16)
	hs := occupy(t, r, g, out)

	impatient := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	claimAsync(r, context.Background(), "patient-1", out)
	claimAsync(r, ctx, "impatient", impatient)
	claimAsync(r, context.Background(), "patient-2", out)
	waitFor(t, "three claims to queue", func() bool { return len(r.sets.queue) == 3 })
	start := time.Now()
	close(hs[1].release)
	batch := <-g.entered
	if len(batch.keys) != 3 {
		t.Fatalf("batch %v, want the three queued claims", batch.keys)
	}
	if res := <-impatient; !errors.Is(res.err, ErrUnavailable) {
		t.Errorf("impatient claim: %v %v, want ErrUnavailable past its deadline", res.c.Outcome, res.err)
	}
	time.Sleep(600*time.Millisecond - time.Since(start)) // Redis is slow, not down
	close(batch.release)
	for _, h := range append(hs[:1:1], hs[2:]...) {
		close(h.release)
	}
	for range executors + 3 {
		if res := <-out; res.err != nil || res.c.Outcome != Claimed {
			t.Errorf("claim %s: %v %v, want claimed", res.id, res.c.Outcome, res.err)
		}
	}
	g.off.Store(true)
	waitFor(t, "the impatient caller's claim to be deleted", func() bool { return !r.exists(t, "impatient") })
	c, err := r.Claim(context.Background(), Key{Provider: "p", ID: "impatient"}, time.Minute)
	if err != nil || c.Outcome != Claimed {
		t.Errorf("retry of the impatient claim: %v %v, want claimed", c.Outcome, err)
	}
}

// TestQueuedClaimTimesOut: the store's timeout passes while a claim waits
// in the queue, its caller's context having no deadline: the caller gets
// ErrUnavailable at the timeout (not when Redis answers), and the claim is
// never sent, nor left in Redis.
func TestQueuedClaimTimesOut(t *testing.T) { onEach(t, queuedClaimTimesOut) }

func queuedClaimTimesOut(t *testing.T, kind string) {
	r, g := gatedStore(t, kind, 300*time.Millisecond)
	out := make(chan result, 16)
	hs := occupy(t, r, g, out)
	gone := make(chan result, 1)
	start := time.Now()
	claimAsync(r, context.Background(), "timer-gone", gone)
	waitFor(t, "queued", func() bool { return len(r.sets.queue) == 1 })
	var res result
	select {
	case res = <-gone:
	case <-time.After(5 * time.Second):
		g.off.Store(true) // let everything through, so that Close returns
		for _, h := range hs {
			close(h.release)
		}
		t.Fatal("a queued claim outlived the store's timeout")
	}
	el := time.Since(start)
	if !errors.Is(res.err, ErrUnavailable) || !errors.Is(res.err, context.DeadlineExceeded) {
		t.Fatalf("err %v", res.err)
	}
	if el < 250*time.Millisecond || el > 3*time.Second { // the gate holds Redis until released below
		t.Errorf("returned after %v, want about the 300 ms timeout", el)
	}
	claimAsync(r, context.Background(), "after", out)
	waitFor(t, "next queued", func() bool { return len(r.sets.queue) == 2 })
	close(hs[1].release)
	next := <-g.entered
	if slices.Contains(next.keys, RedisKey(r.prefix, Key{Provider: "p", ID: "timer-gone"})) {
		t.Errorf("timed-out claim was sent: %v", next.keys)
	}
	close(next.release)
	close(hs[0].release)
	g.off.Store(true)
	time.Sleep(200 * time.Millisecond)
	if r.exists(t, "timer-gone") {
		t.Error("timed-out claim stands")
	}
}

// TestQueuedCommitOutlivesItsCaller: a commit whose caller's time ran out
// while it was queued is still sent, with a fresh budget, and the event is
// done: the upstream has it.
func TestQueuedCommitOutlivesItsCaller(t *testing.T) { onEach(t, queuedCommitOutlivesItsCaller) }

func queuedCommitOutlivesItsCaller(t *testing.T, kind string) {
	r, g := gatedStore(t, kind, 300*time.Millisecond)
	g.off.Store(true)
	c, err := r.Claim(context.Background(), Key{Provider: "p", ID: "cm"}, time.Minute)
	if err != nil || c.Outcome != Claimed {
		t.Fatal(c.Outcome, err)
	}
	g.off.Store(false)
	out := make(chan result, 16)
	hs := occupy(t, r, g, out)
	cerr := make(chan error, 1)
	go func() { cerr <- r.Commit(context.WithoutCancel(context.Background()), c, time.Hour) }()
	waitFor(t, "queued", func() bool { return len(r.sets.queue) == 1 })
	select {
	case err := <-cerr:
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("commit past the store's timeout: %v, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		g.off.Store(true)
		for _, h := range hs {
			close(h.release)
		}
		t.Fatal("a queued commit's caller outlived the store's timeout")
	}
	time.Sleep(100 * time.Millisecond) // well past the caller's deadline
	close(hs[1].release)
	next := <-g.entered
	if !slices.Contains(next.keys, RedisKey(r.prefix, Key{Provider: "p", ID: "cm"})) {
		t.Errorf("commit not sent: %v", next.keys)
	}
	close(next.release)
	close(hs[0].release)
	g.off.Store(true)
	waitFor(t, "done", func() bool {
		v, _ := r.client.Get(context.Background(), RedisKey(r.prefix, Key{Provider: "p", ID: "cm"})).Result()
		return v == doneValue
	})
}

// TestReusedTimerHasNoStaleTick: a deadline timer that fired while nobody
// waited must not reach its next user with that old tick as the user's
// own deadline. Go 1.23's synchronous timer channels never keep one; with
// GODEBUG=asynctimerchan=1 (or a main module on an older go line) the
// channel holds it, so putTimer keeps only timers stopped before firing.
func TestReusedTimerHasNoStaleTick(t *testing.T) {
	for _, mode := range []string{"asynctimerchan=0", "asynctimerchan=1"} {
		t.Run(mode, func(t *testing.T) {
			t.Setenv("GODEBUG", mode)
			for i := range 10 {
				fired := getTimer(time.Microsecond)
				time.Sleep(5 * time.Millisecond) // fires; nobody receives
				putTimer(fired)
				next := getTimer(time.Hour) // the next user's deadline
				select {
				case <-next.C:
					t.Fatalf("attempt %d: a pooled timer delivered its previous deadline", i)
				case <-time.After(20 * time.Millisecond):
				}
				putTimer(next)
			}
		})
	}
}

// lostReply is a go-redis hook: a SET of "hold" waits until release is
// closed (a command in flight, so that later ones are queued), and a SET
// of a key under "lost:" runs on the server, then its reply is lost.
type lostReply struct{ entered, release chan struct{} }

func (h lostReply) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h lostReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h lostReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		key := fmt.Sprint(cmd.Args()[1])
		if key == "hold" {
			close(h.entered)
			<-h.release
		}
		err := next(ctx, cmd)
		if cmd.Name() == "set" && strings.HasPrefix(key, "lost:") {
			err = errors.New("read tcp: connection reset by peer")
			cmd.SetErr(err)
		}
		return err
	}
}

// TestQueuedClaimWithLostReplyIsUndone: a queued claim that Redis wrote
// but whose reply was lost is reported failed to its caller, which is
// still waiting, and must not stand: every retry of the event would be
// answered "in flight" until the claim's TTL. A claim sent direct was
// always undone; a queued one only when its caller had left.
func TestQueuedClaimWithLostReplyIsUndone(t *testing.T) {
	srv, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{srv.Addr}, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	c.Ping(context.Background())
	h := lostReply{make(chan struct{}), make(chan struct{})}
	c.AddHook(h)
	r := NewRedis(c, "lost:", time.Second)
	t.Cleanup(func() { r.Close() })

	held := make(chan struct{})
	go func() { // in flight: the claim below is queued behind it
		r.sets.set(context.Background(), time.Now().Add(time.Minute), "hold", "x", redis.SetArgs{}, false)
		close(held)
	}()
	<-h.entered
	claimed := make(chan error, 1)
	go func() {
		_, err := r.Claim(context.Background(), Key{Provider: "p", ID: "queued"}, time.Hour)
		claimed <- err
	}()
	time.Sleep(50 * time.Millisecond) // queued behind "hold"
	close(h.release)
	<-held
	if err := <-claimed; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("claim with its reply lost: %v, want ErrUnavailable", err)
	}
	deadline := time.Now().Add(5 * time.Second) // the undo is asynchronous
	for {
		n, err := c.Exists(context.Background(), "lost:p:queued").Result()
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a queued claim reported failed still stands in Redis")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
