// Package webhookcmd adds `caddy webhook` to the Caddy binary: sign, send
// and check webhook requests the way each provider does, with the same
// verify/ code the gateway runs.
//
//	caddy webhook sign  --provider P --secret S [--id ID] [--timestamp T] [--form F] [--file body.json]
//	caddy webhook send  --provider P --secret S --url URL [--event TYPE] [--file body.json] [--repeat N] [--tamper]
//	caddy webhook check --provider P --secret S --file request.http [--at T]
//	caddy webhook replay --archive DIR --to URL [--provider P] [--since 2h | --from T] [--until T]
//	                     [--event-id ID ...] [--all] [--format cloudevents|raw] [--rate N] [--dry-run]
//	                     [--redis ADDR [--key-prefix P]]
//	caddy webhook archive ls --archive DIR [--provider P] [--verdict V] [--since D]
//	caddy webhook archive show --archive DIR RECORD
package webhookcmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/wagate/caddy-webhook/verify"
	"github.com/wagate/caddy-webhook/verify/samples"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "webhook",
		Usage: "sign|send|check|replay|archive ...",
		Short: "Signs, sends and checks webhooks as each provider does",
		Long: `
Signs, sends and checks webhook requests the way each provider does, with
the same code that verifies them in the webhook_verify handler. Providers:
` + strings.Join(verify.Providers(), ", ") + `.

  sign   prints the headers the provider would send for a body
  send   posts a realistic signed sample event to a URL
  check  says whether a captured HTTP request verifies, and if not, why
  replay sends archived events the upstream never accepted
  archive lists (ls) and shows (show) the archived requests

The secret is never printed. Run "caddy webhook <command> --help" for
each command's flags.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(signCommand(), sendCommand(), checkCommand(), replayCommand(), archiveCommand())
		},
	})
}

// errNotVerified ends `check` with exit status 1 after it printed why.
var errNotVerified = errors.New("not verified")

// run wraps a command so that any error is one line on stderr and a
// non-zero exit status, never a usage dump or a stack trace.
func run(f func(cmd *cobra.Command) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cmd.SilenceUsage = true
		cmd.SilenceErrors = true
		if len(args) > 0 {
			return report(cmd, fmt.Errorf("unexpected argument %q (flags only)", args[0]))
		}
		return report(cmd, f(cmd))
	}
}

func report(cmd *cobra.Command, err error) error {
	if err != nil && !errors.Is(err, errNotVerified) {
		fmt.Fprintf(cmd.ErrOrStderr(), "caddy webhook %s: %v\n", cmd.Name(), err)
	}
	return err
}

// common flags
func providerFlags(cmd *cobra.Command) {
	cmd.Flags().String("provider", "", "provider: "+strings.Join(verify.Providers(), ", ")+" (required)")
	cmd.Flags().String("secret", "", "signing secret, in the provider's text form (required; also $WEBHOOK_SECRET)")
}

// verifier builds the provider's Verifier from the flags, at the given clock.
func verifier(cmd *cobra.Command, now func() time.Time) (*verify.Verifier, error) {
	provider, _ := cmd.Flags().GetString("provider")
	secret, _ := cmd.Flags().GetString("secret")
	if secret == "" {
		secret = os.Getenv("WEBHOOK_SECRET")
	}
	switch {
	case provider == "":
		return nil, errors.New("--provider is required (" + strings.Join(verify.Providers(), ", ") + ")")
	case secret == "":
		return nil, errors.New("--secret is required (or set WEBHOOK_SECRET)")
	}
	v, err := verify.New(provider, verify.Options{Secrets: []string{secret}, Now: now})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// parseTime reads --timestamp and --at: Unix seconds or RFC 3339.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: use Unix seconds or RFC 3339", s)
	}
	return t, nil
}

// readBody reads --file, or stdin when it is "-" or unset and allowed.
func readBody(cmd *cobra.Command, stdinOK bool) ([]byte, error) {
	file, _ := cmd.Flags().GetString("file")
	var b []byte
	var err error
	switch {
	case file == "-" || (file == "" && stdinOK):
		b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<20))
		file = "stdin"
	case file == "":
		return nil, nil
	default:
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return b, nil
}

func formsHelp() string {
	var b strings.Builder
	b.WriteString("signature form; default the provider's current one:")
	for _, p := range verify.Providers() {
		v, _ := verify.New(p, verify.Options{Secrets: []string{"whsec_eA=="}})
		var names []string
		for _, f := range v.Forms() {
			names = append(names, f.Name)
		}
		fmt.Fprintf(&b, " %s: %s;", p, strings.Join(names, ", "))
	}
	return strings.TrimSuffix(b.String(), ";")
}

func eventsHelp() string {
	var b strings.Builder
	b.WriteString("sample event type; default a message event:")
	for _, p := range samples.Providers() {
		fmt.Fprintf(&b, " %s: %s;", p, strings.Join(samples.Events(p), ", "))
	}
	return strings.TrimSuffix(b.String(), ";")
}
