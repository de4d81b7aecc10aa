package dedupe_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/dedupe"
	"github.com/wagate/caddy-webhook/internal/redistest"
)

const faultTimeout = 300 * time.Millisecond

// hangBound is how long past its timeout an operation may take before the
// test calls it a hang. Generous: the machine is shared and noisy.
const hangBound = faultTimeout + time.Second

func ownServer(t *testing.T) (*redistest.Server, *dedupe.Redis) {
	t.Helper()
	srv, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	s := dedupe.NewRedis(newClient(t, dedupe.RedisOptions{Addrs: []string{srv.Addr}}), "fault:", faultTimeout)
	return srv, s
}

// unavailableFast checks that every operation fails with ErrUnavailable
// and none takes much longer than the timeout.
func unavailableFast(t *testing.T, s *dedupe.Redis, k dedupe.Key) {
	t.Helper()
	ctx := context.Background()
	held, _ := s.Claim(ctx, dedupe.Key{Provider: "p", ID: "never"}, time.Minute) // a claim value to commit/release
	for name, op := range map[string]func() error{
		"claim":   func() error { _, err := s.Claim(ctx, k, time.Minute); return err },
		"commit":  func() error { return s.Commit(ctx, held, time.Minute) },
		"release": func() error { return s.Release(ctx, held) },
	} {
		start := time.Now()
		err := op()
		if took := time.Since(start); took > hangBound {
			t.Errorf("%s took %s with a %s timeout", name, took, faultTimeout)
		}
		if !errors.Is(err, dedupe.ErrUnavailable) {
			t.Errorf("%s: err = %v, want ErrUnavailable", name, err)
		}
	}
}

func TestRedisStoppedThenRestarted(t *testing.T) {
	srv, s := ownServer(t)
	k := dedupe.Key{Provider: "wazera", ID: "evt_stop"}
	claim(t, s, k, time.Minute, dedupe.Claimed)

	srv.Stop()
	unavailableFast(t, s, k)

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// the same client recovers by itself; the restarted server is empty
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := s.Claim(context.Background(), k, time.Minute)
		if err == nil {
			if c.Outcome != dedupe.Claimed {
				t.Fatalf("after restart: %s, want claimed (data is gone)", c.Outcome)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not recover within 10s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	claim(t, s, k, time.Minute, dedupe.InFlight)
}

func TestRedisSlowHonoursTimeout(t *testing.T) {
	srv, s := ownServer(t)
	k := dedupe.Key{Provider: "zavu", ID: "evt_slow"}
	claim(t, s, k, time.Minute, dedupe.Claimed)
	srv.Pause()
	unavailableFast(t, s, k)
	srv.Resume()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := s.Claim(context.Background(), k, time.Minute)
		if err == nil {
			// the claim taken before the pause is still there
			if c.Outcome != dedupe.InFlight {
				t.Fatalf("after resume: %s, want in_flight", c.Outcome)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after resume: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisUnreachableFromStart(t *testing.T) {
	// a port nothing listens on: every operation fails fast and typed
	s := dedupe.NewRedis(newClient(t, dedupe.RedisOptions{Addrs: []string{"127.0.0.1:1"}}), "x:", faultTimeout)
	unavailableFast(t, s, dedupe.Key{Provider: "vobiz", ID: "e"})
	if err := s.Check(context.Background()); !errors.Is(err, dedupe.ErrUnavailable) {
		t.Errorf("Check: %v", err)
	}
}

// TestOrphanedClaimIsForgotten: a claim whose SET reached a stalled Redis
// but whose reply never came back (the caller got ErrUnavailable) is
// deleted once Redis answers again, long before its own TTL, so the
// provider's retry is not turned away as in flight.
func TestOrphanedClaimIsForgotten(t *testing.T) {
	srv, s := ownServer(t)
	k := dedupe.Key{Provider: "wazapin", ID: "evt_orphan"}
	// an established connection, so the SET below is written, not stuck in
	// the connection's handshake
	claim(t, s, dedupe.Key{Provider: "wazapin", ID: "warm-up"}, time.Minute, dedupe.Claimed)
	srv.Pause()
	if _, err := s.Claim(context.Background(), k, time.Minute); !errors.Is(err, dedupe.ErrUnavailable) {
		t.Fatalf("claim against a paused Redis: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	srv.Resume() // Redis now runs the SET it had received: an orphaned claim
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := s.Claim(context.Background(), k, time.Minute)
		if err == nil && c.Outcome == dedupe.Claimed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the orphaned claim was not deleted: %v %v", c.Outcome, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
