package webhookcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wagate/caddy-webhook/archive"
	"github.com/wagate/caddy-webhook/caddymodule"
	"github.com/wagate/caddy-webhook/dedupe"
)

// Replay's fixed settings: the gateway's defaults.
const (
	replayTimeout     = 30 * time.Second         // each request
	replayInFlightTTL = 60 * time.Second         // the gateway's in_flight_ttl
	replayDoneTTL     = dedupe.DefaultDoneTTL    // the gateway's dedupe_ttl
	replayKeyPrefix   = "webhook:"               // the gateway's key_prefix
	replayUserAgent   = "caddy-webhook-replay/1" // so an app's log tells replays apart
)

// errNotAccepted ends replay with exit status 1 after its summary.
var errNotAccepted = errors.New("not every selected event was accepted")

func replayCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Sends archived events the upstream never accepted",
		Long: `Selects verified events from the archive of webhook_verify and sends them to
--to as the gateway would have forwarded them: the CloudEvent or the raw
body (--format; default the route's), with the Webhook-Provider,
Webhook-Event-Id and Webhook-Event-Type headers and Webhook-Replay: true.

By default it selects the events never accepted: no 2xx outcome anywhere in
the archive for the event id, neither on the first delivery, nor on a later
provider retry, nor on an earlier replay. --all selects every verified
event in the range. Each answer is appended to the archive as an outcome
record, so a second replay sends nothing already accepted.

With --redis it uses the gateway's dedupe store as the gateway does (claim,
commit on 2xx, release otherwise), so a replay racing a provider retry
cannot deliver an event twice; ids the store marks done are skipped, and
count as accepted. Connect to it as the gateway's redis block does: several
--redis addresses are a Cluster (or Sentinels, with --redis-master-name);
the password comes from the environment variable that --redis-password-env
names (as {env.REDIS_PASSWORD} in the Caddyfile), never from the command
line.

Exit status 0 when every selected event was accepted, 1 otherwise.`,
	}
	f := cmd.Flags()
	f.String("archive", "", "the archive directory (required)")
	f.String("to", "", "where to send the events, such as http://localhost:3000/webhooks (required)")
	f.String("provider", "", "only this provider's events")
	f.String("since", "", "only events of the last D, such as 2h or 7d")
	f.String("from", "", "only events from this time, RFC 3339 or Unix seconds")
	f.String("until", "", "only events before this time, RFC 3339 or Unix seconds")
	f.StringArray("event-id", nil, "only this event id (repeat for several)")
	f.Bool("all", false, "every verified event in the range, accepted or not")
	f.String("format", "", "cloudevents or raw; default the format the route forwarded")
	f.Float64("rate", 10, "at most this many events a second")
	f.Bool("dry-run", false, "list what would be sent, send nothing")
	f.StringSlice("redis", nil, "the dedupe store's Redis address, host:port; several (repeated or comma-separated): a Cluster, or Sentinels with --redis-master-name")
	f.String("key-prefix", replayKeyPrefix, "the dedupe store's key prefix, as the gateway's key_prefix")
	f.String("redis-username", "", "the Redis user, with ACLs")
	f.String("redis-password-env", "", "the name of the environment variable that holds the Redis password (never the password itself)")
	f.Int("redis-db", 0, "the Redis database number")
	f.Bool("redis-cluster", false, "one --redis address is a Redis Cluster endpoint")
	f.String("redis-master-name", "", "the --redis addresses are Sentinels watching this master")
	f.String("redis-sentinel-password-env", "", "the name of the environment variable that holds the Sentinels' password")
	f.Bool("redis-tls", false, "connect to Redis with TLS")
	f.String("redis-tls-ca", "", "with --redis-tls: a PEM file of the CA to trust instead of the system's")
	f.String("redis-tls-server-name", "", "with --redis-tls: the name the server's certificate must carry")
	cmd.RunE = run(runReplay)
	return cmd
}

// replayRedis reads the --redis flags into the options the gateway's
// redis block would give (caddymodule.Redis): nil without --redis, an
// error for a --redis-* flag without it. Passwords come from environment
// variables, named by the flags, so that they never appear in a process
// list.
func replayRedis(cmd *cobra.Command) (*redis.UniversalOptions, error) {
	fl := cmd.Flags()
	addrs, _ := fl.GetStringSlice("redis")
	if len(addrs) == 0 {
		var set []string
		for _, name := range []string{"redis-username", "redis-password-env", "redis-db", "redis-cluster",
			"redis-master-name", "redis-sentinel-password-env", "redis-tls", "redis-tls-ca", "redis-tls-server-name"} {
			if fl.Changed(name) {
				set = append(set, "--"+name)
			}
		}
		if len(set) > 0 {
			return nil, fmt.Errorf("%s: needs --redis", strings.Join(set, ", "))
		}
		return nil, nil
	}
	var r caddymodule.Redis
	r.Address = addrs
	r.Username, _ = fl.GetString("redis-username")
	r.DB, _ = fl.GetInt("redis-db")
	r.Cluster, _ = fl.GetBool("redis-cluster")
	r.MasterName, _ = fl.GetString("redis-master-name")
	r.TLS, _ = fl.GetBool("redis-tls")
	r.TLSCAFile, _ = fl.GetString("redis-tls-ca")
	r.TLSServerName, _ = fl.GetString("redis-tls-server-name")
	for flag, into := range map[string]*string{"redis-password-env": &r.Password, "redis-sentinel-password-env": &r.SentinelPassword} {
		name, _ := fl.GetString(flag)
		if name == "" {
			continue
		}
		if !envName.MatchString(name) {
			return nil, fmt.Errorf("--%s: give the name of an environment variable, not a password", flag)
		}
		if os.Getenv(name) == "" { // the name is not echoed: it may be a password given by mistake
			return nil, fmt.Errorf("--%s: no environment variable of that name is set (give its name, not the password)", flag)
		}
		*into = "{env." + name + "}"
	}
	opts, err := caddymodule.RedisClientOptions(&r)
	if err != nil {
		// the gateway's own check, which names the redis block's options:
		// named here as the flags that set them
		return nil, errors.New(redisFlagNames.Replace(err.Error()))
	}
	return opts, nil
}

var redisFlagNames = strings.NewReplacer(
	"redis address", "--redis",
	"redis: ", "--redis: ",
	"which goes in password", "which goes in the variable --redis-password-env names",
	"cluster and master_name", "--redis-cluster and --redis-master-name",
	"sentinel_username and sentinel_password need master_name", "--redis-sentinel-password-env needs --redis-master-name",
	"db must be 0 with Redis Cluster", "--redis-db must be 0 with a Redis Cluster",
	"tls_* options need tls", "--redis-tls-ca and --redis-tls-server-name need --redis-tls",
	"redis tls_ca_file", "--redis-tls-ca",
	"redis tls_server_name", "--redis-tls-server-name",
	"redis username", "--redis-username",
	"redis master_name", "--redis-master-name",
)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

type replayCounts struct{ selected, sent, accepted, failed, skipped int }

func (c replayCounts) String() string {
	return fmt.Sprintf("selected %d, sent %d, accepted %d, failed %d, skipped %d", c.selected, c.sent, c.accepted, c.failed, c.skipped)
}

func runReplay(cmd *cobra.Command) error {
	fl := cmd.Flags()
	r, err := archiveReader(cmd)
	if err != nil {
		return err
	}
	to, _ := fl.GetString("to")
	if u, err := url.Parse(to); to == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("--to is required: an http:// or https:// URL")
	}
	format, _ := fl.GetString("format")
	if format != "" && format != "cloudevents" && format != "raw" {
		return fmt.Errorf("--format %q: use cloudevents or raw", format)
	}
	rate, _ := fl.GetFloat64("rate")
	if !(rate > 0) || math.IsInf(rate, 1) { // NaN and +Inf too: no interval to wait
		return errors.New("--rate must be a positive number")
	}
	var f archive.Filter
	f.Provider, _ = fl.GetString("provider")
	f.EventIDs, _ = fl.GetStringArray("event-id")
	since, _ := fl.GetString("since")
	from, _ := fl.GetString("from")
	until, _ := fl.GetString("until")
	switch {
	case since != "" && from != "":
		return errors.New("give --since or --from, not both")
	case since != "":
		d, err := parseDays(since)
		if err != nil || d <= 0 {
			return fmt.Errorf("--since %q: use a duration such as 2h or 7d", since)
		}
		f.Since = time.Now().Add(-d)
	case from != "":
		if f.Since, err = parseTime(from); err != nil {
			return fmt.Errorf("--from: %w", err)
		}
	}
	if until != "" {
		if f.Until, err = parseTime(until); err != nil {
			return fmt.Errorf("--until: %w", err)
		}
	}
	redisOpts, err := replayRedis(cmd)
	if err != nil {
		return err
	}
	all, _ := fl.GetBool("all")
	// the events' ids first, then their records one at a time: a replay
	// after a long outage holds one body, not every body at once
	sel, err := r.Plan(f, all)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if dry, _ := fl.GetBool("dry-run"); dry {
		n := 0
		_, _, err := sel.Each(func(ev *archive.Record) error {
			fmt.Fprintf(out, "would send %s %s %s %s (record %s)\n", ev.Time.UTC().Format(time.RFC3339), ev.Provider, ev.EventID, dash(ev.EventType), ev.ID)
			n++
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%d events selected; nothing sent (--dry-run)\n", n)
		return nil
	}

	var store *dedupe.Redis
	if redisOpts != nil {
		prefix, _ := fl.GetString("key-prefix")
		client := redis.NewUniversalClient(redisOpts)
		defer client.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
		err := client.Ping(ctx).Err()
		cancel()
		if err != nil {
			return fmt.Errorf("--redis %s: %w", strings.Join(redisOpts.Addrs, ","), err)
		}
		store = dedupe.NewRedis(client, prefix, 0)
		defer store.Close()
	}

	p := &replayer{
		to: to, format: format, store: store,
		client: &http.Client{
			Timeout: replayTimeout,
			// a redirect is the answer, not acceptance: following it
			// would turn the POST into a GET without the body and count
			// the page it lands on as the event delivered (the gateway's
			// reverse_proxy does not follow one either)
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		dir:     r.Dir,
		writers: map[string]*archive.Writer{},
		stderr:  cmd.ErrOrStderr(),
	}
	defer p.close()
	if file, ok := out.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
		p.progress = out
	}
	p.counts.selected = sel.Len()
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	accepted, gone, err := sel.Each(func(ev *archive.Record) error {
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		}
		next = time.Now().Add(interval)
		p.replay(cmd.Context(), ev)
		p.draw()
		return nil
	})
	if err != nil {
		return err
	}
	// accepted since the selection, as the store's done: skipped, and
	// accepted; gone: skipped, not accepted
	p.counts.skipped += accepted + gone
	p.counts.accepted += accepted
	if gone > 0 {
		p.note("skipped: %d selected events are no longer in the archive (their files were deleted meanwhile)", gone)
	}
	if p.progress != nil {
		fmt.Fprint(out, "\r\033[K")
	}
	fmt.Fprintf(out, "replay: %s\n", p.counts)
	if err := p.close(); err != nil {
		return fmt.Errorf("writing the outcomes to the archive: %w", err)
	}
	if p.counts.accepted < p.counts.selected {
		return errNotAccepted
	}
	return nil
}

type replayer struct {
	to       string
	format   string
	store    *dedupe.Redis
	client   *http.Client
	dir      string
	writers  map[string]*archive.Writer // per provider, opened on first use
	stderr   io.Writer
	progress io.Writer // the terminal, or nil
	counts   replayCounts
	closed   bool
}

// replay sends one event and appends its outcome to the archive.
func (p *replayer) replay(ctx context.Context, ev *archive.Record) {
	w, err := p.writer(ev.Provider)
	if err != nil {
		p.fail(ev, "the archive cannot be written: "+err.Error())
		return
	}
	ref := archive.Ref{ID: ev.ID, EventID: ev.EventID}
	body, contentType, err := ev.Forwarded(p.format)
	if err != nil {
		p.fail(ev, err.Error())
		return
	}
	var claim dedupe.Claim
	if p.store != nil {
		claim, err = p.store.Claim(ctx, dedupe.Key{Provider: ev.Provider, ID: ev.EventID}, replayInFlightTTL)
		switch {
		case err != nil:
			p.fail(ev, "dedupe store: "+err.Error())
			return
		case claim.Outcome == dedupe.Done:
			p.counts.skipped++
			p.counts.accepted++
			p.record(w, ref, &archive.Outcome{Settled: archive.Done, Replay: true})
			return
		case claim.Outcome == dedupe.InFlight:
			p.counts.skipped++
			p.note("skipped: %s %s is being delivered by another request right now; replay again later", ev.Provider, ev.EventID)
			return
		}
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.to, bytes.NewReader(body))
	if err != nil {
		p.fail(ev, err.Error())
		return
	}
	if contentType == "" { // raw: the headers as received, less what is not the app's
		for k, vs := range ev.Headers {
			if dropOnReplay(k) {
				continue
			}
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
	} else {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("User-Agent", replayUserAgent)
	req.Header.Set("Webhook-Provider", ev.Provider)
	req.Header.Set("Webhook-Event-Id", ev.EventID)
	req.Header.Set("Webhook-Event-Type", ev.EventType)
	req.Header.Set("Webhook-Replay", "true")

	start := time.Now()
	resp, err := p.client.Do(req)
	o := archive.Outcome{Duration: time.Since(start), Replay: true, Settled: archive.None}
	p.counts.sent++
	if err != nil {
		o.Error = err.Error()
	} else {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		o.Status = resp.StatusCode
	}
	ok := o.Status >= 200 && o.Status < 300
	if p.store != nil {
		// the request's context may be gone (interrupted): settle anyway
		sctx := context.WithoutCancel(ctx)
		if ok {
			o.Settled = archive.Committed
			if err := p.store.Commit(sctx, claim, replayDoneTTL); err != nil && !errors.Is(err, dedupe.ErrClaimLost) {
				p.note("dedupe store: commit %s %s: %v", ev.Provider, ev.EventID, err)
			}
		} else {
			o.Settled = archive.Released
			if err := p.store.Release(sctx, claim); err != nil {
				p.note("dedupe store: release %s %s: %v", ev.Provider, ev.EventID, err)
			}
		}
	}
	p.record(w, ref, &o)
	if ok {
		p.counts.accepted++
		return
	}
	p.counts.failed++
	if o.Error != "" {
		p.note("failed: %s %s: %s", ev.Provider, ev.EventID, o.Error)
	} else {
		p.note("failed: %s %s: the upstream answered %d", ev.Provider, ev.EventID, o.Status)
	}
}

// dropOnReplay tells the headers a raw replay does not resend: those the
// transport sets, credentials (archived redacted), and Webhook-*, which
// replay sets itself.
func dropOnReplay(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Te", "Trailer", "Upgrade",
		"Proxy-Connection", "Accept-Encoding", "Authorization", "Proxy-Authorization", "Cookie", "User-Agent":
		return true
	}
	return strings.HasPrefix(http.CanonicalHeaderKey(name), "Webhook-")
}

func (p *replayer) fail(ev *archive.Record, why string) {
	p.counts.failed++
	p.note("failed: %s %s: %s", ev.Provider, ev.EventID, why)
}

func (p *replayer) record(w *archive.Writer, ref archive.Ref, o *archive.Outcome) {
	if err := w.WriteOutcome(ref, o); err != nil {
		p.lost(ref.EventID, err)
	}
}

// lost says that the outcome of event id could not be archived.
func (p *replayer) lost(id string, err error) {
	p.note("warning: the outcome of %s was not archived: %v; a later replay may send it again", id, err)
}

// note prints a line on stderr, above the progress line on a terminal.
func (p *replayer) note(format string, args ...any) {
	if p.progress != nil {
		fmt.Fprint(p.progress, "\r\033[K")
	}
	fmt.Fprintf(p.stderr, format+"\n", args...)
	p.draw()
}

func (p *replayer) draw() {
	if p.progress != nil {
		fmt.Fprintf(p.progress, "\r\033[Kreplay: %s", p.counts)
	}
}

// writer returns the writer of a provider's replay outcomes: files of
// their own in the provider's directory, never cleaned by replay (the
// gateway's retention and max_size apply to them).
func (p *replayer) writer(provider string) (*archive.Writer, error) {
	if w, ok := p.writers[provider]; ok {
		return w, nil
	}
	host, _ := os.Hostname()
	w, err := archive.Open(archive.Options{
		Dir: p.dir, Provider: provider, Instance: "replay-" + host,
		Limits: archive.Limits{Retention: -1, MaxSize: -1, Sync: archive.SyncAlways,
			// replay writes one outcome at a time, so none joins another's
			// write today; if one ever did, its loss is reported like any other
			OnLost: func(ids []string, err error) {
				for _, id := range ids {
					p.lost(id, err)
				}
			}},
		CleanEvery: -1,
	})
	if err != nil {
		return nil, err
	}
	p.writers[provider] = w
	return w, nil
}

func (p *replayer) close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, w := range p.writers {
		errs = append(errs, w.Close())
	}
	return errors.Join(errs...)
}
