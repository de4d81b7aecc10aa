package webhookcmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wagate/caddy-webhook/archive"
)

func archiveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Lists and shows the requests webhook_verify archived",
		Long: `Reads the directory of webhook_verify's archive option.

  ls    one line a request: record, time, provider, verdict (or the reject's
        reason), event id, type, and the upstream's status
  show  the request of one record as raw HTTP, the form that
        "caddy webhook check --file -" reads:

    caddy webhook archive show --archive DIR RECORD | caddy webhook check --provider P --secret S --file -

explains why a live request was rejected. A truncated, corrupt or foreign
line or file is skipped with a warning on stderr.`,
	}
	cmd.AddCommand(archiveLsCommand(), archiveShowCommand())
	return cmd
}

func archiveLsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "Lists the archived requests, one line each",
	}
	cmd.Flags().String("archive", "", "the archive directory (required)")
	cmd.Flags().String("provider", "", "only this provider's requests")
	cmd.Flags().String("verdict", "", "only requests of this verdict (verified, rejected, duplicate, in_flight, store_error, unverified) or reject reason (no_match, ...), or both as the VERDICT column shows them (rejected:no_match)")
	cmd.Flags().String("since", "", "only requests of the last D (such as 2h), or since a time (RFC 3339 or Unix seconds)")
	cmd.RunE = run(func(cmd *cobra.Command) error {
		r, err := archiveReader(cmd)
		if err != nil {
			return err
		}
		var f archive.Filter
		f.Provider, _ = cmd.Flags().GetString("provider")
		if s, _ := cmd.Flags().GetString("since"); s != "" {
			if f.Since, err = sinceTime(s, time.Now()); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
		}
		verdict, _ := cmd.Flags().GetString("verdict")
		// the VERDICT column's own form, rejected:no_match, names both
		verdict, reason, both := strings.Cut(verdict, ":")
		// the outcomes first, to give each request its upstream status
		// and the verdict the claim gave a verified event, when it kept
		// the event from the upstream
		last := map[string]*archive.Record{}
		refused := map[string]string{}
		err = r.Scan(archive.Filter{Provider: f.Provider, Since: f.Since}, func(rec *archive.Record) error {
			if rec.Kind == archive.KindOutcome {
				last[rec.Ref] = rec
				if rec.Verdict != "" {
					refused[rec.Ref] = rec.Verdict
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		r.Warn = nil // said once
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RECORD\tTIME\tPROVIDER\tVERDICT\tEVENT\tTYPE\tUPSTREAM")
		err = r.Scan(f, func(rec *archive.Record) error {
			if rec.Kind != archive.KindRequest {
				return nil
			}
			v := rec.Verdict
			if rv := refused[rec.ID]; rv != "" {
				v = rv
			}
			switch {
			case both && (v != verdict || rec.Reason != reason):
				return nil
			case !both && verdict != "" && v != verdict && rec.Reason != verdict:
				return nil
			}
			if rec.Reason != "" {
				v += ":" + rec.Reason
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", rec.ID, rec.Time.UTC().Format(time.RFC3339), rec.Provider, v,
				dash(rec.EventID), dash(rec.EventType), upstream(last[rec.ID]))
			return nil
		})
		if err != nil {
			return err
		}
		return tw.Flush()
	})
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// upstream describes an outcome for ls.
func upstream(o *archive.Record) string {
	switch {
	case o == nil:
		return "-"
	case o.Settled == archive.Done:
		return "done"
	case o.Status == 0:
		return "error"
	}
	s := strconv.Itoa(o.Status)
	if o.Replay {
		s += " (replay)"
	}
	return s
}

func archiveShowCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show RECORD",
		Short: "Prints an archived request as raw HTTP",
		Long: `Prints the request of an archived record (its id, as "archive ls" lists
it) as raw HTTP: the request line, the headers as received (Authorization,
Proxy-Authorization and Cookie redacted), a blank line and the body, the
form that "caddy webhook check --file -" reads. A note on stderr says when
the body was not archived or was cut (rejected headers or body).`,
	}
	cmd.Flags().String("archive", "", "the archive directory (required)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		if len(args) != 1 {
			return report(cmd, errors.New("give one record id, as archive ls lists them"))
		}
		r, err := archiveReader(cmd)
		if err != nil {
			return report(cmd, err)
		}
		rec, err := r.Find(args[0])
		switch {
		case err != nil:
			return report(cmd, err)
		case rec == nil:
			return report(cmd, fmt.Errorf("no record %s in %s", args[0], r.Dir))
		case rec.Kind == archive.KindOutcome:
			ref := rec.Ref
			if rec, err = r.Find(ref); err != nil || rec == nil {
				return report(cmd, fmt.Errorf("record %s is an outcome, and its request %s is not in the archive", args[0], ref))
			}
		}
		_, err = cmd.OutOrStdout().Write(rawHTTP(rec))
		switch {
		case rec.BodyTruncated:
			fmt.Fprintf(cmd.ErrOrStderr(), "note: the body was cut to %d of its %d bytes: a signature over it cannot match\n", len(rec.BodyBytes()), rec.BodySize)
		case len(rec.BodyBytes()) == 0 && rec.Headers.Get("Content-Length") != "" && rec.Headers.Get("Content-Length") != "0":
			fmt.Fprintln(cmd.ErrOrStderr(), "note: the body was not archived (rejected headers): a signature over it cannot match")
		}
		return report(cmd, err)
	}
	return cmd
}

// rawHTTP writes a request record as an HTTP/1.1 request.
func rawHTTP(rec *archive.Record) []byte {
	var b bytes.Buffer
	method, path := rec.Method, rec.Path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/"
	}
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, path)
	if rec.Host != "" {
		fmt.Fprintf(&b, "Host: %s\r\n", rec.Host)
	}
	keys := make([]string, 0, len(rec.Headers))
	for k := range rec.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range rec.Headers[k] {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	b.Write(rec.BodyBytes())
	return b.Bytes()
}

// archiveReader returns a reader of --archive that warns on stderr.
func archiveReader(cmd *cobra.Command) (*archive.Reader, error) {
	dir, _ := cmd.Flags().GetString("archive")
	if dir == "" {
		return nil, errors.New("--archive is required: the directory of webhook_verify's archive option")
	}
	stderr := cmd.ErrOrStderr()
	return &archive.Reader{Dir: dir, Warn: func(file string, line int, msg string) {
		warn(stderr, file, line, msg)
	}}, nil
}

func warn(w io.Writer, file string, line int, msg string) {
	if line > 0 {
		fmt.Fprintf(w, "warning: %s:%d: %s\n", file, line, msg)
	} else {
		fmt.Fprintf(w, "warning: %s: %s\n", file, msg)
	}
}

// sinceTime reads a duration back from now (2h, 7d) or a time.
func sinceTime(s string, now time.Time) (time.Time, error) {
	if d, err := parseDays(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: use a positive duration", s)
		}
		return now.Add(-d), nil
	}
	return parseTime(s)
}

// parseDays is time.ParseDuration that also takes whole days ("7d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, err
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
