package dedupe_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
	s := dedupe.NewRedis(newClient(t, &redis.UniversalOptions{Addrs: []string{srv.Addr}}), "fault:", faultTimeout)
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
	s := dedupe.NewRedis(newClient(t, &redis.UniversalOptions{Addrs: []string{"127.0.0.1:1"}}), "x:", faultTimeout)
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

// TestRedisSentinelFailover: through a Sentinel (master_name), the store
// finds the master, keeps across a failover what was committed before it,
// fails with ErrUnavailable (never anything else) while the master
// changes, and claims on the new master afterwards. (A write the old
// master took in the instant of the switch is dropped by its resync: the
// event may then be forwarded twice, never lost.)
func TestRedisSentinelFailover(t *testing.T) {
	t.Parallel() // its own servers; most of its time is the Sentinel's
	sen, err := redistest.StartSentinel("gateway")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sen.Close)
	ctx := context.Background()
	prefix := uniquePrefix()
	s := dedupe.NewRedis(newClient(t, &redis.UniversalOptions{Addrs: []string{sen.Sentinel.Addr}, MasterName: sen.Name}), prefix, faultTimeout)
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check through the Sentinel: %v", err)
	}

	before := dedupe.Key{Provider: "zavu", ID: "before-failover"}
	c := claim(t, s, before, time.Minute, dedupe.Claimed)
	if err := s.Commit(ctx, c, time.Hour); err != nil {
		t.Fatal(err)
	}
	// wait for the replica to have it: what a failover loses of the last
	// writes is Redis's asynchronous replication, not the store's doing
	raw := prefix + "zavu:" + before.ID
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if v, _ := sen.Replica.Do("GET", raw); v == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached the replica", raw)
		}
	}

	if err := sen.Failover(); err != nil {
		t.Fatal(err)
	}
	var after string // the raw key of the first claim that succeeds
	for i, deadline := 0, time.Now().Add(15*time.Second); after == ""; i++ {
		id := fmt.Sprint("after-failover-", i)
		c, err := s.Claim(ctx, dedupe.Key{Provider: "zavu", ID: id}, time.Minute)
		switch {
		case err == nil && c.Outcome == dedupe.Claimed:
			after = prefix + "zavu:" + id
			t.Logf("first claim after the failover: attempt %d", i+1)
		case err != nil && !errors.Is(err, dedupe.ErrUnavailable):
			t.Fatalf("claim during failover: %v, want ErrUnavailable", err)
		case time.Now().After(deadline):
			t.Fatalf("no claim succeeded 15s after the failover: %v %v", c.Outcome, err)
		default:
			time.Sleep(50 * time.Millisecond)
		}
	}
	claim(t, s, before, time.Minute, dedupe.Done)
	if role, _ := sen.Master.Do("ROLE"); !strings.HasPrefix(role, "master") {
		t.Errorf("the promoted server's role is %q, want master", role)
	}
	if n, err := sen.Master.Do("EXISTS", after); n != "1" {
		t.Errorf("the claim after the failover is not on the new master: EXISTS %s = %q %v", after, n, err)
	}
}
