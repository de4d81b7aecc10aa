package webhookcmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/wagate/caddy-webhook/verify"
	"github.com/wagate/caddy-webhook/verify/samples"
)

func sendCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "send",
		Short: "Posts a signed sample event to a URL",
		Long: `Builds a realistic event of --event for the provider (a fresh event id and
timestamp each call unless --id or --timestamp are given), or takes the body
from --file, signs it as the provider does and POSTs it to --url, then
prints the status and the response body.

--repeat N sends the same event N times, each re-signed as the provider's
retries are (to watch the duplicates being caught); --tamper changes one
byte of the body after signing (to watch a 401).

A 2xx answer without the Webhook-Event-Id header that webhook_verify sets
on every request it verified prints a warning on stderr: the event went
to a route without webhook_verify (a path typo answered by a catch-all
200, for example), which a provider would take as delivered. The exit
status stays 0 once every answer arrived.`,
	}
	providerFlags(cmd)
	cmd.Flags().String("url", "", "where to POST, such as http://localhost:8080/wazera (required)")
	cmd.Flags().String("event", "", eventsHelp())
	cmd.Flags().String("file", "", "body file instead of a sample")
	cmd.Flags().String("id", "", "the event's id in the sample, and the delivery id where the scheme signs one; default fresh")
	cmd.Flags().String("timestamp", "", "the event's time and signing time, Unix seconds or RFC 3339; default now")
	cmd.Flags().String("form", "", formsHelp())
	cmd.Flags().Int("repeat", 1, "send the same event this many times")
	cmd.Flags().Bool("tamper", false, "change one byte of the body after signing")
	cmd.Flags().Duration("timeout", 10*time.Second, "timeout of each request")
	cmd.RunE = run(func(cmd *cobra.Command) error {
		v, err := verifier(cmd, time.Now)
		if err != nil {
			return err
		}
		target, _ := cmd.Flags().GetString("url")
		if u, err := url.Parse(target); target == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("--url is required: an http:// or https:// URL")
		}
		repeat, _ := cmd.Flags().GetInt("repeat")
		if repeat < 1 {
			return errors.New("--repeat must be at least 1")
		}
		body, err := sendBody(cmd, v.Name())
		if err != nil {
			return err
		}
		timeout, _ := cmd.Flags().GetDuration("timeout")
		client := &http.Client{Timeout: timeout}
		tamper, _ := cmd.Flags().GetBool("tamper")
		if id, _ := cmd.Flags().GetString("id"); id == "" {
			cmd.Flags().Set("id", verify.NewDeliveryID()) // one delivery id for every repeat
		}
		for i := 0; i < repeat; i++ {
			h, err := signFlags(cmd, v, body)
			if err != nil {
				return err
			}
			if ev, err := v.Verify(h, body); err == nil && i == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "event %s, type %s (%s)\n", ev.ID, ev.Type, ev.ProviderType)
			}
			sent := body
			if tamper {
				sent = tampered(body)
			}
			h.Set("Content-Type", "application/json")
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, target, bytes.NewReader(sent))
			if err != nil {
				return err
			}
			req.Header = h
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("POST %s: %w", target, unwrapURLError(err))
			}
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "POST %s: %s\n%s\n", target, resp.Status, bytes.TrimSpace(answer))
			if unverified2xx(resp) {
				fmt.Fprintf(cmd.ErrOrStderr(), "caddy webhook send: warning: POST %s answered %d without a %s header: the event may have gone to a route without webhook_verify (a path typo answered by a catch-all 200?), and a provider would take it as delivered\n",
					target, resp.StatusCode, eventIDHeader)
			}
		}
		return nil
	})
	return cmd
}

// eventIDHeader is the response header webhook_verify sets on every
// request it verified, whether it forwarded it or answered it as a
// duplicate.
const eventIDHeader = "Webhook-Event-Id"

// unverified2xx reports a success answer that shows no sign of having
// passed webhook_verify: a provider would count the event as delivered
// although no verifier saw it.
func unverified2xx(resp *http.Response) bool {
	return resp.StatusCode >= 200 && resp.StatusCode < 300 && resp.Header.Get(eventIDHeader) == ""
}

// sendBody is --file, or the provider's sample of --event with fresh values.
func sendBody(cmd *cobra.Command, provider string) ([]byte, error) {
	if file, _ := cmd.Flags().GetString("file"); file != "" {
		b, err := readBody(cmd, false)
		if err == nil && !json.Valid(b) {
			err = fmt.Errorf("%s is not JSON", file)
		}
		return b, err
	}
	event, _ := cmd.Flags().GetString("event")
	if event == "" {
		event = defaultEvent(provider)
	}
	vals := samples.Fresh(time.Now())
	if id, _ := cmd.Flags().GetString("id"); id != "" {
		vals.ID = id
	}
	if ts, _ := cmd.Flags().GetString("timestamp"); ts != "" {
		t, err := parseTime(ts)
		if err != nil {
			return nil, fmt.Errorf("--timestamp: %w", err)
		}
		vals.Time = t
	}
	return samples.Body(provider, event, vals)
}

func defaultEvent(provider string) string {
	events := samples.Events(provider)
	for _, e := range []string{"message.received", "message.inbound", "message.new", "message.delivered"} {
		for _, have := range events {
			if e == have {
				return e
			}
		}
	}
	if len(events) > 0 {
		return events[0]
	}
	return ""
}

// tampered returns a copy of body with one letter or digit near the middle
// changed, so that the body stays JSON but no longer matches its signature.
func tampered(body []byte) []byte {
	b := append([]byte(nil), body...)
	for i := len(b) / 2; i < len(b); i++ {
		if c := b[i]; c >= 'a' && c <= 'y' || c >= '0' && c <= '8' {
			b[i]++
			return b
		}
	}
	if len(b) > 0 {
		b[len(b)-1] ^= 0x20 // no letter in the second half: any change will do
	}
	return b
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
