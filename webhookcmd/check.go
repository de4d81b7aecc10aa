package webhookcmd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wagate/caddy-webhook/verify"
)

func checkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Says whether a captured HTTP request verifies, and if not, why",
		Long: `Reads a captured raw HTTP request (request line, headers, a blank line,
the body, as it went over the wire) from --file and checks it as the
gateway would. Exit status 0 when it verifies; 1 with the precise reason
when it does not. The secret is never printed.

--at checks it as of another time, such as when it was captured, to tell a
bad signature from a timestamp that has since expired.`,
	}
	providerFlags(cmd)
	cmd.Flags().String("file", "", "the captured request (required; - for stdin)")
	cmd.Flags().String("at", "", "check as of this time, Unix seconds or RFC 3339; default now")
	cmd.RunE = run(func(cmd *cobra.Command) error {
		at := time.Now
		if s, _ := cmd.Flags().GetString("at"); s != "" {
			t, err := parseTime(s)
			if err != nil {
				return fmt.Errorf("--at: %w", err)
			}
			at = func() time.Time { return t }
		}
		v, err := verifier(cmd, at)
		if err != nil {
			return err
		}
		if file, _ := cmd.Flags().GetString("file"); file == "" {
			return errors.New("--file is required: a captured HTTP request")
		}
		raw, err := readBody(cmd, false)
		if err != nil {
			return err
		}
		c, err := parseCaptured(raw)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		ev, err := v.Verify(c.header, c.body)
		if err == nil {
			fmt.Fprintf(out, "verified: %s event %s, type %s (%s)\n", v.Name(), ev.ID, ev.Type, ev.ProviderType)
			return nil
		}
		fmt.Fprintf(out, "not verified: %s\n", explain(err, v))
		if c.note != "" {
			fmt.Fprintf(out, "note: %s\n", c.note)
		}
		return errNotVerified
	})
	return cmd
}

// captured is a request read from a capture file.
type captured struct {
	header  http.Header
	body    []byte
	chunked bool   // the body was sent chunked and has been decoded
	note    string // something about the capture that may explain a failure
}

// parseCaptured reads a raw HTTP/1.x request. Lines may end in \r\n or \n;
// the body is taken byte for byte after the blank line, and decoded when it
// is chunked.
func parseCaptured(raw []byte) (*captured, error) {
	end, sepLen := bytes.Index(raw, []byte("\r\n\r\n")), 4
	if lf := bytes.Index(raw, []byte("\n\n")); lf >= 0 && (end < 0 || lf < end) {
		end, sepLen = lf, 2
	}
	if end < 0 {
		return nil, errors.New("not an HTTP request: no blank line between the headers and the body")
	}
	head := strings.ReplaceAll(string(raw[:end]), "\r\n", "\n")
	head = strings.ReplaceAll(head, "\n", "\r\n") + "\r\n\r\n"
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
	if err != nil {
		return nil, fmt.Errorf("not an HTTP request: %v", err)
	}
	c := &captured{header: req.Header, body: raw[end+sepLen:]}
	if len(req.TransferEncoding) > 0 && req.TransferEncoding[0] == "chunked" {
		body, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(c.body)))
		if err != nil {
			return nil, fmt.Errorf("chunked body: %v", err)
		}
		c.body, c.chunked = body, true
		return c, nil
	}
	if cl := req.Header.Get("Content-Length"); cl != "" {
		switch n, err := strconv.Atoi(cl); {
		case err == nil && n > 0 && len(c.body) == 0:
			c.note = fmt.Sprintf("the capture has no body, but Content-Length says %d: the signature was checked against nothing, so this says nothing about the secret. An archive record kept without its body (rejected headers, the default) cannot be checked: set rejected body to keep them", n)
		case err == nil && n != len(c.body):
			c.note = fmt.Sprintf("the body is %d bytes but Content-Length says %d: was the capture trimmed or given a trailing newline?", len(c.body), n)
		}
	}
	return c, nil
}

// explain turns a verify error into the reason a user can act on.
func explain(err error, v *verify.Verifier) string {
	var te *verify.TimestampError
	switch {
	case errors.As(err, &te) && errors.Is(err, verify.ErrTimestampTooOld):
		return fmt.Sprintf("the timestamp is too old: %s beyond the %s window (a replay, or a capture checked later: try --at with the capture time)", te.By.Round(time.Second), te.Window)
	case errors.As(err, &te):
		return fmt.Sprintf("the timestamp is in the future: %s beyond the %s allowed (is the sender's or this clock wrong?)", te.By.Round(time.Second), te.Window)
	case errors.Is(err, verify.ErrMissingSignature):
		return "the signature header is missing: expected " + strings.Join(v.SignatureHeaders(), " or ")
	case errors.Is(err, verify.ErrMalformedSignature):
		return "the signature header is malformed (" + err.Error() + ")"
	case errors.Is(err, verify.ErrNoMatch):
		return "the signature does not match: the secret is wrong, or the body (or the signed id or timestamp) changed after signing"
	case errors.Is(err, verify.ErrMalformedBody):
		return "the body is not the provider's JSON (" + err.Error() + ")"
	case errors.Is(err, verify.ErrMissingTimestamp):
		return "the timestamp header is missing"
	case errors.Is(err, verify.ErrMalformedTimestamp):
		return "the timestamp is not a valid time"
	case errors.Is(err, verify.ErrMissingEventID):
		return "there is no usable event id (" + err.Error() + ")"
	}
	return err.Error()
}
