package caddymodule

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wagate/caddy-webhook/archive"
	"github.com/wagate/caddy-webhook/dedupe"
	"github.com/wagate/caddy-webhook/verify"
)

// Archive keeps a record of every request the handler answers, in JSON
// Lines files under Dir (one file an hour, per provider and per gateway
// instance), so that events the upstream never accepted can be replayed
// with `caddy webhook replay` long after the provider stopped retrying,
// and a live reject can be checked with `caddy webhook archive show`.
//
// A verified event's record is written to its file before the event is
// claimed in the dedupe store, so before it is forwarded: a killed gateway
// loses nothing the upstream saw, nor an event its claim still holds. When the
// write fails, the request follows on_store_error (open: forwarded
// anyway; closed: 503), and caddy_webhook_archive_write_errors_total
// counts it.
type Archive struct {
	// Dir is the archive directory, created with mode 0700 if missing;
	// files are mode 0600. Several gateway instances may share it. It takes
	// placeholders such as {env.ARCHIVE_DIR}. Required.
	Dir string `json:"dir,omitempty"`
	// Retention is how long a file is kept after its hour ends. Default 7d.
	Retention caddy.Duration `json:"retention,omitempty"`
	// MaxSize bounds the provider's files, in bytes; the oldest files are
	// deleted first (never the current hour's). Default 10 GiB.
	MaxSize int64 `json:"max_size,omitempty"`
	// Rejected is what is kept of a rejected request: "headers" (default),
	// its metadata and headers; "body", also its body, up to 64 KiB;
	// "off", nothing.
	Rejected string `json:"rejected,omitempty"`
	// Sync is "interval" (default), which fsyncs every second, or
	// "always", which fsyncs before each verified event is forwarded
	// (concurrent requests share one fsync).
	Sync string `json:"sync,omitempty"`

	w       *archive.Writer
	poolKey string
	errs    prometheus.Counter
	logger  *zap.Logger
}

// archives shares one writer per directory and provider across routes and
// config reloads: a reload neither reopens nor loses a file.
var archives = caddy.NewUsagePool()

type pooledArchive struct{ *archive.Writer }

func (p pooledArchive) Destruct() error { return p.Close() }

// archiveMetrics, in Caddy's registry, namespace caddy, subsystem webhook:
//
//	caddy_webhook_archive_write_errors_total{provider}
//	    records that could not be written (a full or unwritable disk)
//	caddy_webhook_archive_deleted_files_total{provider,reason}
//	    files deleted; reason: retention, max_size
//	caddy_webhook_archive_undelivered_deleted_total{provider}
//	    verified events never accepted whose last record a deleted file
//	    held: they can no longer be replayed
type archiveMetrics struct {
	writeErrs, deleted, undelivered *prometheus.CounterVec
}

var archiveCollectors = sync.OnceValue(func() *archiveMetrics {
	const ns, sub = "caddy", "webhook"
	return &archiveMetrics{
		writeErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "archive_write_errors_total",
			Help: "Archive records that could not be written.",
		}, []string{"provider"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "archive_deleted_files_total",
			Help: "Archive files deleted by retention or max_size.",
		}, []string{"provider", "reason"}),
		undelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "archive_undelivered_deleted_total",
			Help: "Verified events never accepted upstream whose archive file was deleted.",
		}, []string{"provider"}),
	}
})

func registerArchiveMetrics(reg prometheus.Registerer) (*archiveMetrics, error) {
	m := archiveCollectors()
	return m, register(reg, m.writeErrs, m.deleted, m.undelivered)
}

// provisionArchive applies the archive's defaults and opens (or shares)
// its writer. An unwritable directory is an error here, at start. It runs
// in Provision once the verifier exists; a nil Archive is a no-op.
func (h *Handler) provisionArchive(ctx caddy.Context) error {
	a := h.Archive
	if a == nil {
		return nil
	}
	if a.Retention == 0 {
		a.Retention = caddy.Duration(archive.DefaultRetention)
	}
	if a.MaxSize == 0 {
		a.MaxSize = archive.DefaultMaxSize
	}
	if a.Rejected == "" {
		a.Rejected = archive.RejectedHeaders
	}
	if a.Sync == "" {
		a.Sync = archive.SyncInterval
	}
	if err := a.validate(); err != nil {
		return err
	}
	dir, err := expand(caddy.NewReplacer(), "archive", a.Dir)
	if err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return fmt.Errorf("archive %s: %w", a.Dir, err)
	}
	m, err := registerArchiveMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return err
	}
	name := h.verifier.Name()
	a.logger = h.logger.With(zap.String("provider", name))
	a.errs = m.writeErrs.WithLabelValues(name)
	logger, undelivered, errs := a.logger, m.undelivered.WithLabelValues(name), a.errs
	for _, reason := range []string{"retention", "max_size"} {
		m.deleted.WithLabelValues(name, reason) // at 0 from the start, as the other series
	}
	limits := archive.Limits{
		Retention: time.Duration(a.Retention), MaxSize: a.MaxSize, Rejected: a.Rejected, Sync: a.Sync,
		OnLost: func(ids []string, err error) {
			// outcome records that joined another request's write, which
			// failed: those events look undelivered to a replay
			errs.Add(float64(len(ids)))
			logger.Error("archive write failed", zap.Error(err), zap.String("record", "outcome"),
				zap.Int("records", len(ids)), zap.Strings("event_ids", ids[:min(len(ids), 20)]))
		},
		OnDelete: func(d archive.Deleted) {
			m.deleted.WithLabelValues(name, d.Reason).Inc()
			if len(d.Undelivered) == 0 {
				logger.Info("archive file deleted", zap.String("file", d.File), zap.String("reason", d.Reason))
				return
			}
			undelivered.Add(float64(len(d.Undelivered)))
			logger.Error("archive file deleted with events never delivered: they can no longer be replayed",
				zap.String("file", d.File), zap.String("reason", d.Reason),
				zap.Int("undelivered", len(d.Undelivered)), zap.Strings("event_ids", d.Undelivered[:min(len(d.Undelivered), 20)]))
		},
	}
	key := "archive|" + dir + "|" + name
	v, loaded, err := archives.LoadOrNew(key, func() (caddy.Destructor, error) {
		w, err := archive.Open(archive.Options{Dir: dir, Provider: name, Limits: limits})
		if err != nil {
			return nil, err
		}
		return pooledArchive{w}, nil
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", dir, err)
	}
	a.w, a.poolKey = v.(pooledArchive).Writer, key
	if loaded {
		// a reload, or a second route of this provider: the newest limits
		// and logger apply to the shared writer
		if err := a.w.SetLimits(limits); err != nil {
			return err
		}
	}
	return nil
}

// validate checks the archive's options without changing them.
func (a *Archive) validate() error {
	switch {
	case a.Dir == "":
		return errors.New("archive needs a directory")
	case a.Retention < 0:
		return errors.New("archive retention must be positive")
	case a.MaxSize < 0:
		return errors.New("archive max_size must be positive")
	}
	switch a.Rejected {
	case "", archive.RejectedHeaders, archive.RejectedBody, archive.RejectedOff:
	default:
		return fmt.Errorf("archive rejected %q: use headers, body or off", a.Rejected)
	}
	switch a.Sync {
	case "", archive.SyncInterval, archive.SyncAlways:
	default:
		return fmt.Errorf("archive sync %q: use interval or always", a.Sync)
	}
	return nil
}

// cleanupArchive releases the writer; safe after a failed Provision.
func (h *Handler) cleanupArchive() error {
	if h.Archive == nil || h.Archive.poolKey == "" {
		return nil
	}
	_, err := archives.Delete(h.Archive.poolKey)
	return err
}

// archiveHeader returns a copy of the request's headers as received, to
// pass to archiveRequest later, or nil when the archive is off. Call it
// before the handler strips or deletes any header: the record keeps the
// signature headers, so a reject can be checked later.
func (h *Handler) archiveHeader(r *http.Request) http.Header {
	if !h.archiving() {
		return nil
	}
	c := receivedHeaders.Get().(http.Header)
	for k, v := range r.Header {
		c[k] = v // values are not changed in place, only deleted or replaced
	}
	return c
}

// receivedHeaders and ceHeads hold the per-request copies the archive
// makes, reused from request to request: archiveVerdict puts them back
// once the record is written.
var (
	receivedHeaders = sync.Pool{New: func() any { return make(http.Header, 16) }}
	ceHeads         = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
)

// archiveRequest writes the record of an answered request that did not
// verify, or was not read: call it once per request. header is what
// archiveHeader returned (r.Header when nil); body is the body as
// received, nil when it was not read; verdict is one of archive's
// verdicts, reason the reject's. A no-op returning a zero Ref when the
// archive is off or the rejected policy is off. A failed write is counted
// and logged here; the caller applies on_store_error.
func (h *Handler) archiveRequest(r *http.Request, header http.Header, body []byte, verdict, reason string) (archive.Ref, error) {
	return h.archiveVerdict(r, header, body, nil, nil, verdict, reason, nil)
}

// archiveVerified is archiveRequest for a verified event, before it is
// claimed; head is its CloudEvent head (ev.AppendCloudEventHead), which
// the caller forwards too, and which a replay rebuilds the event from.
func (h *Handler) archiveVerified(r *http.Request, header http.Header, body []byte, ev *verify.Event, head []byte) (archive.Ref, error) {
	return h.archiveVerdict(r, header, body, ev, head, archive.Verified, "", nil)
}

// archiving reports whether the handler writes records.
func (h *Handler) archiving() bool { return h.Archive != nil && h.Archive.w != nil }

// cloudEventHead returns ev's CloudEvent head in a buffer from the pool;
// putHead puts it back once the head is no longer used.
func cloudEventHead(ev *verify.Event) *[]byte {
	p := ceHeads.Get().(*[]byte)
	*p = ev.AppendCloudEventHead((*p)[:0])
	return p
}

func putHead(p *[]byte) {
	if cap(*p) <= 64<<10 {
		*p = (*p)[:0]
		ceHeads.Put(p)
	}
}

// archiveUnverified is archiveRequest for a request that failed
// verification with verr: a timestamp error's time and window go into
// the record, for the inspector's diagnosis.
func (h *Handler) archiveUnverified(r *http.Request, header http.Header, body []byte, verdict, reason string, verr error) (archive.Ref, error) {
	return h.archiveVerdict(r, header, body, nil, nil, verdict, reason, verr)
}

func (h *Handler) archiveVerdict(r *http.Request, header http.Header, body []byte, ev *verify.Event, head []byte, verdict, reason string, verr error) (archive.Ref, error) {
	// the one call every answered request makes: its span gets the verdict too
	h.traceVerdict(r, ev, verdict, reason)
	if !h.archiving() {
		return archive.Ref{}, nil
	}
	a := h.Archive
	if header == nil {
		header = r.Header
	} else if len(header) <= 64 { // archiveHeader's copy: used once, here
		defer func() { clear(header); receivedHeaders.Put(header) }()
	}
	path := r.RequestURI // as received: Caddy's rewrites change r.URL only
	if path == "" || path[0] != '/' {
		path = r.URL.RequestURI()
	}
	route, _, _ := strings.Cut(path, "?")
	q := archive.Request{
		Route: r.Host + route, Remote: r.RemoteAddr, Method: r.Method, Host: r.Host, Path: path,
		Header: header, Body: body, Verdict: verdict, Reason: reason, Secret: -1, Format: h.Format,
	}
	q.Secrets = len(h.Secrets)
	q.Form = h.verifier.FormOf(header) // the headers as received, signatures included
	if ev != nil {
		q.EventID, q.EventType, q.Secret = ev.ID, ev.Type, ev.Secret
		q.BodyJSON = true // the verifier parsed it whole
		q.CloudEventHead = head
		q.Timestamp, q.Window = ev.Time, ev.Window
	}
	if te, ok := errors.AsType[*verify.TimestampError](verr); ok {
		// the window was passed by By: the timestamp is that far beyond it
		q.Window = te.Window
		if errors.Is(te.Err, verify.ErrTimestampTooNew) {
			q.Timestamp = time.Now().Add(te.Window + te.By)
		} else {
			q.Timestamp = time.Now().Add(-(te.Window + te.By))
		}
	}
	ref, err := a.w.WriteRequest(&q)
	if err != nil {
		a.errs.Inc()
		if ce := a.logger.Check(zapcore.ErrorLevel, "archive write failed"); ce != nil {
			ce.Write(zap.Error(err), zap.String("verdict", verdict), zap.String("event_id", q.EventID))
		}
	}
	return ref, err
}

// archiveOutcome writes the outcome of the request that ref names, once
// the upstream answered: its status (0 when it gave none), the handler's
// error, the time forwarding took, and the claim's settlement (committed,
// released or none). A no-op for a zero ref or when the archive is off.
func (h *Handler) archiveOutcome(ref archive.Ref, status int, err error, d time.Duration, settled string) {
	o := archive.Outcome{Status: status, Duration: d, Settled: settled}
	if err != nil {
		o.Error = err.Error()
	}
	h.writeOutcome(ref, &o)
}

// archiveRefused writes the outcome of a verified event whose record was
// written but that the claim kept from the upstream: a duplicate
// (answered 200, settled done), in flight elsewhere (409), or a store
// error with on_store_error closed (503). The outcome's verdict replaces
// the record's for ls and the inspector; d is the time the claim took.
func (h *Handler) archiveRefused(r *http.Request, ref archive.Ref, ev *verify.Event, claim dedupe.Claim, d time.Duration) {
	o := archive.Outcome{Verdict: archive.StoreError, Status: http.StatusServiceUnavailable, Duration: d, Settled: archive.None}
	switch claim.Outcome {
	case dedupe.Done:
		o.Verdict, o.Status, o.Settled = archive.Duplicate, http.StatusOK, archive.Done
	case dedupe.InFlight:
		o.Verdict, o.Status = archive.InFlight, http.StatusConflict
	}
	h.traceVerdict(r, ev, o.Verdict, "")
	h.writeOutcome(ref, &o)
}

func (h *Handler) writeOutcome(ref archive.Ref, o *archive.Outcome) {
	if !h.archiving() || ref.ID == "" {
		return
	}
	a := h.Archive
	if werr := a.w.WriteOutcome(ref, o); werr != nil {
		a.errs.Inc()
		if ce := a.logger.Check(zapcore.ErrorLevel, "archive write failed"); ce != nil {
			ce.Write(zap.Error(werr), zap.String("record", "outcome"), zap.String("event_id", ref.EventID))
		}
	}
}

// unmarshalArchive parses the archive subdirective:
//
//	archive <dir> {
//	    retention <duration>         # default 7d
//	    max_size <size>              # default 10GiB
//	    rejected headers|body|off    # default headers
//	    sync interval|always         # default interval
//	}
//
// The block is optional; unknown and repeated options are errors.
func (h *Handler) unmarshalArchive(d *caddyfile.Dispenser) error {
	a := &Archive{}
	if err := oneArg(d, &a.Dir); err != nil {
		return err
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("archive %s given twice", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "retention":
			err = durationArg(d, &a.Retention)
		case "max_size":
			var s string
			if err = oneArg(d, &s); err == nil {
				n, perr := humanize.ParseBytes(s)
				if perr != nil || n == 0 || n > math.MaxInt64 {
					return d.Errf("archive max_size %q: use a size such as 10GiB", s)
				}
				a.MaxSize = int64(n)
			}
		case "rejected":
			err = choiceArg(d, &a.Rejected, archive.RejectedHeaders, archive.RejectedBody, archive.RejectedOff)
		case "sync":
			err = choiceArg(d, &a.Sync, archive.SyncInterval, archive.SyncAlways)
		default:
			return d.Errf("unrecognized archive option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	h.Archive = a
	return nil
}
