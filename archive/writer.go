package archive

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by Open.
const (
	DefaultRetention  = 7 * 24 * time.Hour
	DefaultMaxSize    = 10 << 30
	DefaultSyncEvery  = time.Second
	DefaultCleanEvery = time.Minute
)

// Rejected policies: what is kept of a rejected request.
const (
	// RejectedHeaders keeps its metadata and headers, not its body.
	RejectedHeaders = "headers"
	// RejectedBody also keeps its body, up to MaxRejectedBody.
	RejectedBody = "body"
	// RejectedOff writes no record for it.
	RejectedOff = "off"
)

// Sync modes.
const (
	// SyncInterval fsyncs the file every SyncEvery (default 1 s). A
	// record is written (in the kernel's page cache) before WriteRequest
	// returns, so a killed process loses nothing; a power loss may lose
	// the last second.
	SyncInterval = "interval"
	// SyncAlways also fsyncs a forwarded request's record before
	// WriteRequest returns. Concurrent writers share one fsync.
	SyncAlways = "always"
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("archive closed")

// Limits are the settings that a running Writer takes anew (see
// Writer.SetLimits), as on a config reload.
type Limits struct {
	// Retention is how long a file is kept after its hour ends; default
	// DefaultRetention; negative keeps files forever.
	Retention time.Duration
	// MaxSize bounds the provider's files, in bytes; the oldest are
	// deleted first; default DefaultMaxSize; negative is unbounded. Files
	// of the current hour are never deleted.
	MaxSize int64
	// Rejected is RejectedHeaders (default), RejectedBody or RejectedOff.
	Rejected string
	// Sync is SyncInterval (default) or SyncAlways.
	Sync string
	// OnDelete is called, from the Writer's goroutine, for each file that
	// retention or MaxSize deleted.
	OnDelete func(Deleted)
	// OnLost is called when outcome records whose WriteOutcome had
	// already returned (see there) could not be written, with their
	// requests' event ids (as their Refs gave them) and the error.
	OnLost func(eventIDs []string, err error)
}

// Options configures a Writer.
type Options struct {
	// Dir is the archive directory; created, mode 0700, if missing.
	Dir string
	// Provider names the provider subdirectory and is written in every
	// record.
	Provider string
	// Instance names this writer's files; default the host name and a
	// random suffix. Two writers must never share one.
	Instance string
	Limits
	// SyncEvery and CleanEvery are how often the background goroutine
	// fsyncs and enforces the limits; defaults DefaultSyncEvery and
	// DefaultCleanEvery. The limits are also enforced when the hour turns.
	// A negative CleanEvery never enforces them in the background: the
	// owner calls Clean.
	SyncEvery, CleanEvery time.Duration
	// Now returns the current time; default time.Now.
	Now func() time.Time
}

// Writer appends records to the provider's current hourly file. It is safe
// for concurrent use; records written concurrently share one write(2).
type Writer struct {
	dir      string // Dir/Provider
	provider string
	inst     string // the file name's instance part
	idPrefix string // the instance's random suffix and '-'
	now      func() time.Time
	limits   atomic.Pointer[Limits]
	seq      atomic.Uint64

	gmu     sync.Mutex // guards pending
	pending *group     // the group a record written now joins; nil: it leads one

	mu      sync.Mutex
	f       *os.File
	name    string    // f's path
	hour    time.Time // f's hour
	size    int64     // f's size after the last whole record
	written uint64    // records written so far
	closed  bool

	smu     sync.Mutex // guards synced and syncing; scond waits on it
	scond   *sync.Cond
	synced  uint64 // records known to be on disk
	syncing bool

	cleanMu sync.Mutex // one clean at a time
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

// Open creates the directories and the current hour's file, so that an
// unwritable directory is an error here, and starts the goroutine that
// fsyncs and enforces the limits.
func Open(o Options) (*Writer, error) {
	if o.Dir == "" {
		return nil, errors.New("archive: no directory")
	}
	if err := checkProvider(o.Provider); err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SyncEvery <= 0 {
		o.SyncEvery = DefaultSyncEvery
	}
	if o.CleanEvery == 0 {
		o.CleanEvery = DefaultCleanEvery
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	suffix := hex.EncodeToString(rnd[:])
	if o.Instance == "" {
		host, _ := os.Hostname()
		o.Instance = sanitize(host)
	}
	w := &Writer{
		dir:      filepath.Join(o.Dir, o.Provider),
		provider: o.Provider,
		inst:     sanitize(o.Instance) + "-" + suffix,
		idPrefix: suffix + "-",
		now:      o.Now,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	w.scond = sync.NewCond(&w.smu)
	if err := w.SetLimits(o.Limits); err != nil {
		return nil, err
	}
	// the archive directory is created 0700 when missing, and an existing
	// one is left as it is: it may be a shared directory the operator
	// named (archive /srv), whose mode is not the archive's to change. The
	// provider directory is the archive's own, and holds the files: 0700.
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if err := mkdir(w.dir); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	w.mu.Lock()
	err := w.rotate(hourOf(w.now()))
	w.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	go w.loop(o.SyncEvery, o.CleanEvery)
	return w, nil
}

// checkProvider refuses a provider name that is not one plain directory
// name: it must not escape the archive directory.
func checkProvider(p string) error {
	if p == "" || p != filepath.Base(p) || strings.HasPrefix(p, ".") || strings.ContainsAny(p, `/\`) {
		return fmt.Errorf("archive: provider %q cannot name a directory", p)
	}
	return nil
}

// mkdir creates the provider directory d with mode 0700, or sets an
// existing one's mode to 0700. A symbolic link there is refused: the
// files would be written, and chmod applied, elsewhere.
func mkdir(d string) error {
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	info, err := os.Lstat(d)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory", d)
	}
	if info.Mode().Perm() != 0o700 {
		return os.Chmod(d, 0o700)
	}
	return nil
}

// sanitize keeps a name to letters, digits, '-' and '_', so that it cannot
// break a file name.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "gateway"
	}
	return string(b[:min(len(b), 64)])
}

// SetLimits replaces the writer's limits, applying defaults; the next
// write and the next clean use them.
func (w *Writer) SetLimits(l Limits) error {
	if l.Retention == 0 {
		l.Retention = DefaultRetention
	}
	if l.MaxSize == 0 {
		l.MaxSize = DefaultMaxSize
	}
	if l.Rejected == "" {
		l.Rejected = RejectedHeaders
	}
	if l.Sync == "" {
		l.Sync = SyncInterval
	}
	switch l.Rejected {
	case RejectedHeaders, RejectedBody, RejectedOff:
	default:
		return fmt.Errorf("archive: rejected %q: use headers, body or off", l.Rejected)
	}
	switch l.Sync {
	case SyncInterval, SyncAlways:
	default:
		return fmt.Errorf("archive: sync %q: use interval or always", l.Sync)
	}
	w.limits.Store(&l)
	return nil
}

// Dir returns the directory the writer's files are in: Dir/Provider.
func (w *Writer) Dir() string { return w.dir }

// Instance returns the instance part of the writer's file names.
func (w *Writer) Instance() string { return w.inst }

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooled = 256 << 10

// WriteRequest appends a request record and returns its Ref. The record
// is in the file (written, not buffered in the process) when it returns;
// with SyncAlways, a forwarded request's record (Verified, Unverified) is
// also on disk. A Rejected request follows the Rejected policy: with
// RejectedOff nothing is written and the Ref is zero.
func (w *Writer) WriteRequest(q *Request) (Ref, error) {
	l := w.limits.Load()
	body, size := q.Body, len(q.Body)
	if q.Verdict == Rejected {
		switch l.Rejected {
		case RejectedOff:
			return Ref{}, nil
		case RejectedHeaders:
			body, size = nil, 0
		default:
			body = body[:min(len(body), MaxRejectedBody)]
		}
	}
	id := w.nextID()
	bp := buffers.Get().(*[]byte)
	b := appendRequest((*bp)[:0], id, w.now(), w.provider, q, body, size)
	n, err := w.write(b, true, "")
	*bp = b[:0]
	if cap(b) <= maxPooled {
		buffers.Put(bp)
	}
	if err != nil {
		return Ref{}, err
	}
	if l.Sync == SyncAlways && (q.Verdict == Verified || q.Verdict == Unverified) {
		if err := w.syncTo(n); err != nil {
			return Ref{}, err
		}
	}
	return Ref{ID: id, EventID: q.EventID}, nil
}

// WriteOutcome appends the outcome of the request that ref names. A zero
// ref writes nothing. When concurrent records are being gathered into a
// group (see write), the outcome joins it and WriteOutcome returns nil at
// once: the group's leader, already running, writes it a moment later,
// and reports a failure to Limits.OnLost. Nothing waits on an outcome
// (the request it closes was written before forwarding), so its caller is
// spared the hand-off; alone, it is written before WriteOutcome returns.
func (w *Writer) WriteOutcome(ref Ref, o *Outcome) error {
	if ref.ID == "" {
		return nil
	}
	bp := buffers.Get().(*[]byte)
	b := appendOutcome((*bp)[:0], w.nextID(), w.now(), w.provider, ref, o)
	_, err := w.write(b, false, ref.EventID)
	*bp = b[:0]
	buffers.Put(bp)
	return err
}

func (w *Writer) nextID() string {
	var a [40]byte
	b := append(a[:0], w.idPrefix...)
	return string(strconv.AppendUint(b, w.seq.Add(1), 10))
}

// group is the records that one write(2) appends: those whose writers
// arrived while its leader gave the others running beside it their turn.
type group struct {
	buf      *[]byte // the records, whole lines
	records  uint64
	detached []string      // event ids of the outcomes whose writer did not wait
	done     chan struct{} // closed once written; then end and err are set
	end      uint64        // the count of records written so far, this group's included
	err      error
}

// write appends b, one whole record, to the current hour's file, and
// returns once it is there (written, not buffered in the process), with
// the count of records written so far. Records that concurrent requests
// write together share one write(2): the first writer leads a group,
// yields once so that the requests running beside it can add theirs, and
// writes them all; the others wait for it, unless wait is false (an
// outcome, of event eventID): then a follower returns nil at once. Alone,
// a writer yields to nobody and writes at once.
func (w *Writer) write(b []byte, wait bool, eventID string) (uint64, error) {
	w.gmu.Lock()
	g := w.pending
	leader := g == nil
	if leader {
		g = &group{buf: buffers.Get().(*[]byte), done: make(chan struct{})}
		*g.buf = (*g.buf)[:0]
		w.pending = g
	}
	*g.buf = append(*g.buf, b...)
	g.records++
	if !leader && !wait {
		g.detached = append(g.detached, eventID)
	}
	w.gmu.Unlock()
	if !leader {
		if !wait {
			return 0, nil
		}
		<-g.done
		return g.end, g.err
	}
	runtime.Gosched()
	return w.flush(g)
}

// flush ends the gathering of group g, which write's leader started, and
// writes it.
func (w *Writer) flush(g *group) (uint64, error) {
	w.gmu.Lock()
	w.pending = nil // the next record leads a new group
	w.gmu.Unlock()
	g.end, g.err = w.writeFile(*g.buf, g.records)
	if cap(*g.buf) <= maxPooled {
		buffers.Put(g.buf)
	}
	g.buf = nil
	close(g.done)
	if g.err != nil && len(g.detached) > 0 {
		if l := w.limits.Load(); l.OnLost != nil {
			l.OnLost(g.detached, g.err)
		}
	}
	return g.end, g.err
}

// writeFile appends b, whole records, to the current hour's file with one
// write(2), and returns the count of records written so far. A failed or
// short write is cut off the file again, so the next record starts on a
// line of its own.
func (w *Writer) writeFile(b []byte, records uint64) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrClosed
	}
	// a record whose time was read before the hour turned may arrive
	// after: it goes in the current file, never in a past one
	if h := hourOf(w.now()); w.f == nil || h.After(w.hour) {
		if err := w.rotate(h); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(b)
	if err != nil {
		if n > 0 {
			w.f.Truncate(w.size)
		}
		return 0, err
	}
	w.size += int64(n)
	w.written += records
	return w.written, nil
}

// rotate syncs and closes the current file and opens the file of hour h.
// It runs under mu.
func (w *Writer) rotate(h time.Time) error {
	if w.f != nil {
		err := w.f.Sync()
		w.f.Close()
		w.f = nil
		if err == nil {
			w.markSynced(w.written)
		}
		select {
		case w.wake <- struct{}{}: // the hour turned: enforce the limits
		default:
		}
	}
	if err := mkdir(w.dir); err != nil { // recreated if it was removed
		return err
	}
	name := filepath.Join(w.dir, FileName(h, w.inst))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.name, w.hour, w.size = f, name, h, info.Size()
	return nil
}

func (w *Writer) markSynced(n uint64) {
	w.smu.Lock()
	w.synced = max(w.synced, n)
	w.smu.Unlock()
	w.scond.Broadcast()
}

// syncTo returns once the first n records are on disk. Callers that
// arrive while an fsync runs wait for it, and the next fsync covers all of
// them at once: a group commit.
func (w *Writer) syncTo(n uint64) error {
	w.smu.Lock()
	defer w.smu.Unlock()
	for w.synced < n {
		if w.syncing {
			w.scond.Wait()
			continue
		}
		w.syncing = true
		w.smu.Unlock()
		w.mu.Lock()
		f, target := w.f, w.written
		w.mu.Unlock()
		err := errors.New("no file open")
		if f != nil {
			err = f.Sync()
		}
		w.smu.Lock()
		w.syncing = false
		w.scond.Broadcast()
		switch {
		case err == nil:
			w.synced = max(w.synced, target)
		case errors.Is(err, os.ErrClosed):
			// rotated meanwhile: rotate synced the file before closing it
		default:
			return err
		}
	}
	return nil
}

// Sync fsyncs every record written so far.
func (w *Writer) Sync() error {
	w.mu.Lock()
	n := w.written
	w.mu.Unlock()
	return w.syncTo(n)
}

func (w *Writer) loop(syncEvery, cleanEvery time.Duration) {
	defer close(w.done)
	st := time.NewTicker(syncEvery)
	defer st.Stop()
	var cleanTick <-chan time.Time
	wake := w.wake
	if cleanEvery > 0 {
		ct := time.NewTicker(cleanEvery)
		defer ct.Stop()
		cleanTick = ct.C
	} else {
		wake = nil
	}
	for {
		select {
		case <-w.stop:
			return
		case <-st.C:
			w.Sync()
		case <-cleanTick:
			w.Clean()
		case <-wake:
			w.Clean()
		}
	}
}

// Close stops the writer's goroutine, fsyncs and closes its file.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	w.markSynced(w.written)
	return err
}

// FileName returns the name of an instance's file for hour h.
func FileName(h time.Time, instance string) string {
	return h.UTC().Format(hourLayout) + "." + instance + ".jsonl"
}

const hourLayout = "2006-01-02T15Z"

func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// parseName reads an archive file's name; ok is false for a foreign file.
func parseName(name string) (hour time.Time, instance string, ok bool) {
	rest, found := strings.CutSuffix(name, ".jsonl")
	if !found || len(rest) < len(hourLayout)+2 || rest[len(hourLayout)] != '.' {
		return time.Time{}, "", false
	}
	h, err := time.Parse(hourLayout, rest[:len(hourLayout)])
	if err != nil {
		return time.Time{}, "", false
	}
	return h, rest[len(hourLayout)+1:], true
}
