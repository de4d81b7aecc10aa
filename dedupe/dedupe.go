// Package dedupe makes sure each webhook event reaches the upstream once,
// without ever dropping one that the upstream did not accept.
//
// "SET NX, then forward" loses events: when the upstream fails after the
// claim, the provider's retry is dropped as a duplicate. A Store has three
// operations instead:
//
//  1. Claim marks an event in flight for a short time under a fresh token.
//     The outcome is Claimed (forward it), InFlight (another delivery holds
//     it right now) or Done (already delivered).
//  2. Commit marks it done for a long time, once the upstream accepted it.
//  3. Release deletes the claim, only while the token still matches, when
//     the upstream did not accept it; the provider's retry then goes through.
//
// An abandoned claim (a crashed gateway) frees itself when its in-flight
// time runs out. Keys are namespaced by provider, so two providers' ids
// never collide. Every operation of a networked store is bounded by a
// timeout and fails with ErrUnavailable, so the caller can choose to fail
// open or closed. The package imports nothing from Caddy.
package dedupe

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Defaults for callers that do not choose.
const (
	// DefaultDoneTTL is how long a delivered event is remembered: above the
	// longest provider retry horizon (about 31.3 h, WAStack).
	DefaultDoneTTL = 48 * time.Hour
	// DefaultTimeout bounds each operation of a networked store.
	DefaultTimeout = 500 * time.Millisecond
	// DefaultMaxEntries bounds the memory store.
	DefaultMaxEntries = 1_000_000
)

var (
	// ErrUnavailable: the store could not answer in time (unreachable,
	// failing, or slower than its timeout). The operation may or may not
	// have taken effect.
	ErrUnavailable = errors.New("dedupe store unavailable")
	// ErrClaimLost is returned by Commit when the claim had expired or was
	// held by another delivery. The event is marked done all the same, since
	// the upstream accepted it; the error tells that the in-flight time was
	// shorter than the delivery took.
	ErrClaimLost = errors.New("claim lost before commit")
	// ErrInvalidKey: the key has no provider or no id, or its provider
	// holds a ':', which separates provider from id in store keys.
	ErrInvalidKey = errors.New("invalid dedupe key")
)

// Outcome is the result of a Claim.
type Outcome uint8

const (
	// Claimed: the caller holds the claim; forward, then Commit or Release.
	Claimed Outcome = iota + 1
	// InFlight: another delivery of the event holds a claim right now.
	InFlight
	// Done: the event was already delivered.
	Done
)

func (o Outcome) String() string {
	switch o {
	case Claimed:
		return "claimed"
	case InFlight:
		return "in_flight"
	case Done:
		return "done"
	}
	return "unknown"
}

// Key names one event.
type Key struct {
	Provider string // no ':'
	ID       string
}

func (k Key) valid() bool {
	return k.Provider != "" && k.ID != "" && !strings.Contains(k.Provider, ":")
}

// Claim is the result of Claim; pass it to Commit or Release when its
// Outcome is Claimed.
type Claim struct {
	Key     Key
	Outcome Outcome
	token   [16]byte
}

// Store is a dedupe store. Implementations are safe for concurrent use.
type Store interface {
	// Claim marks key in flight for ttl, unless it already is or is done.
	Claim(ctx context.Context, key Key, ttl time.Duration) (Claim, error)
	// Commit marks a claimed key done for ttl.
	Commit(ctx context.Context, c Claim, ttl time.Duration) error
	// Release deletes a claim if it is still c's; otherwise it does nothing.
	Release(ctx context.Context, c Claim) error
	// Close releases the store's resources.
	Close() error
}
