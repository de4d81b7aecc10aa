package webhookcmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/wagate/caddy-webhook/verify"
)

func signCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sign",
		Short: "Prints the headers the provider would send for a body",
		Long: `Reads a JSON body from --file (or stdin) and prints, one per line, the
headers the provider would send with it, signed with --secret through the
same code the gateway verifies with.`,
	}
	providerFlags(cmd)
	cmd.Flags().String("id", "", "delivery id, for schemes that sign one (wazapin, standard); default a fresh one")
	cmd.Flags().String("timestamp", "", "time to sign, Unix seconds or RFC 3339; default now")
	cmd.Flags().String("form", "", formsHelp())
	cmd.Flags().String("file", "", "body file; default stdin")
	cmd.RunE = run(func(cmd *cobra.Command) error {
		v, err := verifier(cmd, time.Now)
		if err != nil {
			return err
		}
		body, err := readBody(cmd, true)
		if err != nil {
			return err
		}
		h, err := signFlags(cmd, v, body)
		if err != nil {
			return err
		}
		printHeaders(cmd, h)
		return nil
	})
	return cmd
}

// signFlags signs body as --form, --id and --timestamp say.
func signFlags(cmd *cobra.Command, v *verify.Verifier, body []byte) (http.Header, error) {
	if !json.Valid(body) {
		return nil, errors.New("the body is not JSON")
	}
	var o verify.SignOptions
	o.Form, _ = cmd.Flags().GetString("form")
	o.ID, _ = cmd.Flags().GetString("id")
	if ts, _ := cmd.Flags().GetString("timestamp"); ts != "" {
		t, err := parseTime(ts)
		if err != nil {
			return nil, fmt.Errorf("--timestamp: %w", err)
		}
		o.Time = t
	}
	return v.Sign(body, o)
}

func printHeaders(cmd *cobra.Command, h http.Header) {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, val := range h[name] {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", name, val)
		}
	}
}
