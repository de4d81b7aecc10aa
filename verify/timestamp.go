package verify

import (
	"time"
)

// Bounds on any accepted time: not before the Unix epoch, not after the year 9999.
const (
	maxUnixSeconds = 253402300799    // 9999-12-31T23:59:59Z
	maxUnixMillis  = 253402300799999 // the same, in milliseconds
	millisCutover  = 100_000_000_000 // values at or above are milliseconds (1e11 s is in the year 5138)
)

// parseUnixSeconds parses a header timestamp: decimal Unix seconds, digits
// only (no sign, no spaces, no fraction), as Standard Webhooks and Zavu send it.
func parseUnixSeconds(s string) (time.Time, error) {
	n, ok := parseDigits(s, maxUnixSeconds)
	if !ok {
		return time.Time{}, ErrMalformedTimestamp
	}
	return time.Unix(n, 0), nil
}

// parseDigits parses a non-negative decimal of at most max, digits only.
func parseDigits(s string, max int64) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
		if n > max {
			return 0, false
		}
	}
	return n, true
}

// parseTimeToken parses a time captured from a body: an RFC 3339 string, or
// Unix seconds or milliseconds as a JSON number or a string of digits.
// Seconds and milliseconds are told apart by size: values of 1e11 and above
// are milliseconds.
func parseTimeToken(tok []byte) (time.Time, error) {
	if len(tok) == 0 || string(tok) == "null" {
		return time.Time{}, ErrMissingTimestamp
	}
	s, ok := tokenString(tok)
	if !ok {
		return time.Time{}, ErrMalformedTimestamp
	}
	if tok[0] != '"' {
		return parseUnixAny(s) // a number: negative, fractional and exponent forms fail there
	}
	return parseTimeText(s)
}

// parseTimeText parses a time written as text: Unix seconds or milliseconds
// in digits, or RFC 3339.
func parseTimeText(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, ErrMalformedTimestamp
	}
	if c := s[0]; c >= '0' && c <= '9' {
		if t, err := parseUnixAny(s); err == nil {
			return t, nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 1970 {
		return time.Time{}, ErrMalformedTimestamp
	}
	return t, nil
}

// parseUnixAny parses Unix seconds or milliseconds, told apart by size.
func parseUnixAny(s string) (time.Time, error) {
	n, ok := parseDigits(s, maxUnixMillis)
	if !ok {
		return time.Time{}, ErrMalformedTimestamp
	}
	if n >= millisCutover {
		return time.UnixMilli(n), nil
	}
	return time.Unix(n, 0), nil
}
