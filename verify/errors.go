package verify

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors returned (wrapped) by Verify. Callers map them to HTTP
// statuses with errors.Is. No error text ever contains a secret, a key or a
// full signature.
var (
	// ErrMissingSignature: the signature header is absent or empty.
	ErrMissingSignature = errors.New("missing signature")
	// ErrMalformedSignature: the signature header is present but cannot be
	// parsed (wrong prefix, length, alphabet, repeated header, too many entries).
	ErrMalformedSignature = errors.New("malformed signature")
	// ErrNoMatch: the signature is well formed but no configured secret
	// produces it over the request (wrong secret, or body, id or timestamp altered).
	ErrNoMatch = errors.New("no matching signature")
	// ErrMissingTimestamp: a timestamp the scheme requires is absent.
	ErrMissingTimestamp = errors.New("missing timestamp")
	// ErrMalformedTimestamp: a timestamp is present but not a valid time.
	ErrMalformedTimestamp = errors.New("malformed timestamp")
	// ErrTimestampTooOld: the timestamp is older than the window allows.
	ErrTimestampTooOld = errors.New("timestamp too old")
	// ErrTimestampTooNew: the timestamp is further in the future than the skew allows.
	ErrTimestampTooNew = errors.New("timestamp too new")
	// ErrMalformedBody: the body is not the provider's JSON (empty, not JSON,
	// not an object, not UTF-8, too deeply nested, or lacking a required field).
	ErrMalformedBody = errors.New("malformed body")
	// ErrMissingEventID: no usable event id (absent, empty, longer than
	// MaxEventIDLen bytes, or holding control characters).
	ErrMissingEventID = errors.New("missing event id")
)

// TimestampError reports a timestamp outside its window and by how much.
// It unwraps to ErrTimestampTooOld or ErrTimestampTooNew.
type TimestampError struct {
	Err    error         // ErrTimestampTooOld or ErrTimestampTooNew
	Window time.Duration // the limit that was applied
	By     time.Duration // how far beyond the limit the timestamp is
}

func (e *TimestampError) Error() string {
	return fmt.Sprintf("%v: outside the %s window by %s", e.Err, e.Window, e.By.Round(time.Second))
}

func (e *TimestampError) Unwrap() error { return e.Err }

// bodyErr marks an error found in the body (rather than in a header), so that
// it also matches ErrMalformedBody: a body timestamp that is missing or not a
// time is the provider's malformed JSON (400), not a failed authentication.
func bodyErr(err error, what string) error {
	return fmt.Errorf("%w: %w: %s", ErrMalformedBody, err, what)
}
