package archive_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/archive"
	"github.com/wagate/caddy-webhook/internal/testutil"
)

// clock is an injected time source.
type clock = testutil.Clock

var t0 = time.Date(2026, 5, 1, 13, 59, 58, 0, time.UTC)

func open(t *testing.T, dir, provider string, c *clock, l archive.Limits) *archive.Writer {
	t.Helper()
	w, err := archive.Open(archive.Options{Dir: dir, Provider: provider, Now: c.Now, Limits: l,
		SyncEvery: time.Hour, CleanEvery: -1}) // the tests call Clean themselves
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func verified(id string, body string) *archive.Request {
	return &archive.Request{
		Route: "example.com", Remote: "203.0.113.7:5000", Method: "POST", Host: "example.com", Path: "/wazera",
		Header:  http.Header{"Content-Type": {"application/json"}, "X-Wazera-Signature": {"sha256=abc"}},
		Body:    []byte(body),
		Verdict: archive.Verified, EventID: id, EventType: "message.received", Secret: 1,
		Format: "cloudevents", CloudEventHead: []byte(`{"specversion":"1.0","id":"` + id + `","data":{"payload":`),
	}
}

// records reads every record of the archive, failing on any warning.
func records(t *testing.T, dir string, f archive.Filter) []*archive.Record {
	t.Helper()
	r := &archive.Reader{Dir: dir, Warn: func(file string, line int, msg string) {
		t.Errorf("warning: %s:%d: %s", file, line, msg)
	}}
	var out []*archive.Record
	if err := r.Scan(f, func(rec *archive.Record) error { out = append(out, rec); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := testutil.NewClock(t0)
	w := open(t, dir, "wazera", c, archive.Limits{})
	q := verified("evt_1", "{\"text\":\"héllo \\\"x\\\"\\n\u2028\"}\n")
	q.Header["Authorization"] = []string{"Bearer secret-token"}
	q.Header["Cookie"] = []string{"session=secret"}
	q.Header["Proxy-Authorization"] = []string{"Basic c2VjcmV0"}
	ref, err := w.WriteRequest(q)
	if err != nil {
		t.Fatal(err)
	}
	c.Add(15 * time.Millisecond)
	if err := w.WriteOutcome(ref, &archive.Outcome{Status: 200, Duration: 12500 * time.Microsecond, Settled: archive.Committed}); err != nil {
		t.Fatal(err)
	}
	binary := []byte{0xff, 0xfe, '{', 0}
	ref2, err := w.WriteRequest(&archive.Request{Verdict: archive.Unverified, Secret: -1, Body: binary, Method: "POST", Path: "/x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteOutcome(ref2, &archive.Outcome{Error: "dial tcp: connection refused", Settled: archive.None}); err != nil {
		t.Fatal(err)
	}
	// read while the writer is open: written means in the file, not in a
	// buffer of this process (a SIGKILL loses nothing)
	recs := records(t, dir, archive.Filter{})
	if len(recs) != 4 {
		t.Fatalf("got %d records, want 4", len(recs))
	}
	req, out := recs[0], recs[1]
	if req.Kind != archive.KindRequest || req.ID != ref.ID || req.EventID != "evt_1" || req.Verdict != archive.Verified ||
		req.Provider != "wazera" || req.Route != "example.com" || req.Remote != "203.0.113.7:5000" || req.Host != "example.com" ||
		req.Path != "/wazera" || req.Method != "POST" || req.Format != "cloudevents" || req.EventType != "message.received" ||
		!req.Time.Equal(t0) || req.Secret == nil || *req.Secret != 1 {
		t.Errorf("request record: %+v", req)
	}
	if !bytes.Equal(req.BodyBytes(), q.Body) {
		t.Errorf("body %q, want %q", req.BodyBytes(), q.Body)
	}
	for _, h := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
		if got := req.Headers.Get(h); got != archive.Redacted {
			t.Errorf("%s = %q, want it redacted", h, got)
		}
	}
	if req.Headers.Get("X-Wazera-Signature") != "sha256=abc" {
		t.Errorf("the signature header must stay: %v", req.Headers)
	}
	raw, _ := os.ReadFile(req.File)
	for _, secret := range []string{"secret-token", "session=secret", "c2VjcmV0"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the file holds the credential %q", secret)
		}
	}
	if out.Kind != archive.KindOutcome || out.Ref != ref.ID || out.EventID != "evt_1" || out.Status != 200 ||
		out.DurationOf() != 12500*time.Microsecond || out.Settled != archive.Committed || out.ID == ref.ID {
		t.Errorf("outcome record: %+v", out)
	}
	if got := recs[2]; !bytes.Equal(got.BodyBytes(), binary) || got.Secret != nil || got.Verdict != archive.Unverified {
		t.Errorf("binary body or secret: %+v", got)
	}
	if got := recs[3]; got.Error != "dial tcp: connection refused" || got.Status != 0 || got.Ref != ref2.ID {
		t.Errorf("failed outcome: %+v", got)
	}
	ce, ctype, err := req.Forwarded("")
	want := `{"specversion":"1.0","id":"evt_1","data":{"payload":` + strings.TrimSpace(string(q.Body)) + `}}`
	if err != nil || string(ce) != want || ctype != "application/cloudevents+json" {
		t.Errorf("Forwarded: %q %q %v, want %q", ce, ctype, err, want)
	}
	if !json.Valid(ce) {
		t.Errorf("the rebuilt cloudevent is not JSON: %s", ce)
	}
	if rawBody, _, _ := req.Forwarded("raw"); !bytes.Equal(rawBody, q.Body) {
		t.Errorf("raw: %q", rawBody)
	}
	// every line is one record; the id is found again
	if n := bytes.Count(raw, []byte("\n")); n != 4 {
		t.Errorf("%d lines, want 4", n)
	}
	found, err := (&archive.Reader{Dir: dir}).Find(ref.ID)
	if err != nil || found == nil || found.EventID != "evt_1" {
		t.Errorf("Find(%s) = %+v, %v", ref.ID, found, err)
	}
}

func TestRotateByHourAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "archive")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := testutil.NewClock(t0)
	w := open(t, dir, "zavu", c, archive.Limits{})
	for i, step := range []time.Duration{0, time.Second, time.Second, time.Hour, 2 * time.Hour} {
		c.Add(step)
		if _, err := w.WriteRequest(verified(fmt.Sprint("e", i), `{}`)); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "zavu", "*.jsonl"))
	var hours []string
	for _, f := range files {
		hours = append(hours, strings.SplitN(filepath.Base(f), ".", 2)[0])
		info, err := os.Stat(f)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, info.Mode().Perm())
		}
		if !strings.Contains(f, "."+w.Instance()+".jsonl") {
			t.Errorf("%s: not named for the instance %s", f, w.Instance())
		}
	}
	// 13:59:58 and :59 in 13Z; 14:00:00 and 15:00:00 in their own; 17Z
	want := []string{"2026-05-01T13Z", "2026-05-01T14Z", "2026-05-01T15Z", "2026-05-01T17Z"}
	if !slices.Equal(hours, want) {
		t.Errorf("files for hours %v, want %v", hours, want)
	}
	// the provider directory holds the files: 0700; the archive directory
	// existed, and keeps its mode (it may be a shared one)
	for d, want := range map[string]os.FileMode{dir: 0o755, filepath.Join(dir, "zavu"): 0o700} {
		if info, _ := os.Stat(d); info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", d, info.Mode().Perm(), want)
		}
	}
	var ids []string
	for _, r := range records(t, dir, archive.Filter{}) {
		ids = append(ids, r.EventID)
	}
	if !slices.Equal(ids, []string{"e0", "e1", "e2", "e3", "e4"}) {
		t.Errorf("read back %v", ids)
	}
	// the time filter prunes by hour and by record
	var got []string
	for _, r := range records(t, dir, archive.Filter{Since: t0.Add(2 * time.Second), Until: t0.Add(time.Hour + 3*time.Second)}) {
		got = append(got, r.EventID)
	}
	if !slices.Equal(got, []string{"e2", "e3"}) {
		t.Errorf("since/until kept %v, want [e2 e3]", got)
	}
}

func TestUnwritableDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		// root writes anywhere: make the path a file instead
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o600)
		if _, err := archive.Open(archive.Options{Dir: f, Provider: "wazera"}); err == nil {
			t.Fatal("Open on a file succeeded")
		}
		return
	}
	dir := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(dir, 0o500)
	if _, err := archive.Open(archive.Options{Dir: dir, Provider: "wazera"}); err == nil {
		t.Fatal("Open on a read-only directory succeeded")
	}
}

func TestRejectedPolicy(t *testing.T) {
	big := strings.Repeat("x", archive.MaxRejectedBody+10)
	for _, tc := range []struct {
		policy string
		record bool
		body   int
	}{
		{archive.RejectedHeaders, true, 0},
		{archive.RejectedBody, true, archive.MaxRejectedBody},
		{archive.RejectedOff, false, 0},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			dir := t.TempDir()
			w := open(t, dir, "wazera", testutil.NewClock(t0), archive.Limits{Rejected: tc.policy})
			ref, err := w.WriteRequest(&archive.Request{Verdict: archive.Rejected, Reason: "no_match", Secret: -1,
				Body: []byte(big), Header: http.Header{"X-Wazera-Signature": {"sha256=bad"}}})
			if err != nil {
				t.Fatal(err)
			}
			recs := records(t, dir, archive.Filter{})
			if !tc.record {
				if len(recs) != 0 || ref.ID != "" {
					t.Fatalf("policy off wrote %d records, ref %+v", len(recs), ref)
				}
				return
			}
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			r := recs[0]
			if len(r.BodyBytes()) != tc.body || r.Reason != "no_match" || r.Headers.Get("X-Wazera-Signature") != "sha256=bad" {
				t.Errorf("body %d bytes (want %d), reason %q, headers %v", len(r.BodyBytes()), tc.body, r.Reason, r.Headers)
			}
			if tc.body > 0 && (!r.BodyTruncated || r.BodySize != len(big)) {
				t.Errorf("a cut body must say so: truncated %v size %d", r.BodyTruncated, r.BodySize)
			}
		})
	}
}

// writeAt writes a verified request at time at, with an outcome of status
// (none when 0).
func writeAt(t *testing.T, w *archive.Writer, c *clock, at time.Time, id string, status int) {
	t.Helper()
	c.Set(at)
	ref, err := w.WriteRequest(verified(id, `{"id":"`+id+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	if status != 0 {
		if err := w.WriteOutcome(ref, &archive.Outcome{Status: status}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRetentionReportsUndelivered(t *testing.T) {
	dir := t.TempDir()
	day := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	c := testutil.NewClock(day)
	var told []archive.Deleted
	w := open(t, dir, "wazera", c, archive.Limits{Retention: 48 * time.Hour, OnDelete: func(d archive.Deleted) { told = append(told, d) }})
	writeAt(t, w, c, day, "ok", 200)                          // delivered at once
	writeAt(t, w, c, day.Add(time.Minute), "failed", 500)     // never delivered
	writeAt(t, w, c, day.Add(2*time.Minute), "retried", 503)  // delivered by a retry, later
	writeAt(t, w, c, day.Add(3*time.Minute), "noanswer", 0)   // no outcome at all
	writeAt(t, w, c, day.Add(4*time.Minute), "replayed", 500) // delivered by a replay
	writeAt(t, w, c, day.Add(5*time.Minute), "dup", 0)        // answered as a duplicate later
	writeAt(t, w, c, day.Add(2*time.Hour), "retried", 200)
	c.Set(day.Add(3 * time.Hour))
	if _, err := w.WriteRequest(&archive.Request{Verdict: archive.Duplicate, EventID: "dup", Secret: 0}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteOutcome(archive.Ref{ID: "replay-of-replayed", EventID: "replayed"}, &archive.Outcome{Status: 204, Replay: true}); err != nil {
		t.Fatal(err)
	}

	// 1 s before the 10Z file's end + 48 h: nothing goes
	c.Set(day.Add(49*time.Hour - time.Second))
	if gone, err := w.Clean(); err != nil || len(gone) != 0 {
		t.Fatalf("Clean before retention: %v %v", gone, err)
	}
	c.Set(day.Add(49 * time.Hour))
	gone, err := w.Clean()
	if err != nil || len(gone) != 1 {
		t.Fatalf("Clean at retention: %+v %v", gone, err)
	}
	d := gone[0]
	if d.Reason != "retention" || !d.Hour.Equal(day) || d.Size == 0 {
		t.Errorf("deleted: %+v", d)
	}
	slices.Sort(d.Undelivered)
	if !slices.Equal(d.Undelivered, []string{"failed", "noanswer"}) {
		t.Errorf("undelivered %v, want [failed noanswer]", d.Undelivered)
	}
	if len(told) != 1 || told[0].File != d.File {
		t.Errorf("OnDelete told %+v", told)
	}
	if _, err := os.Stat(d.File); !os.IsNotExist(err) {
		t.Errorf("%s still exists", d.File)
	}
	// the 12Z and 13Z files (the retry, the duplicate) stay
	if n := len(records(t, dir, archive.Filter{})); n != 4 {
		t.Errorf("%d records left, want 4", n)
	}
}

func TestMaxSizeOldestFirstNeverCurrent(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	c := testutil.NewClock(start)
	w := open(t, dir, "wazera", c, archive.Limits{MaxSize: 1})
	for h := 0; h < 4; h++ {
		writeAt(t, w, c, start.Add(time.Duration(h)*time.Hour), fmt.Sprint("h", h), 200)
	}
	c.Set(start.Add(3*time.Hour + time.Minute))
	gone, err := w.Clean()
	if err != nil {
		t.Fatal(err)
	}
	var hours []int
	for _, d := range gone {
		hours = append(hours, d.Hour.Hour())
		if d.Reason != "max_size" || len(d.Undelivered) != 0 {
			t.Errorf("%+v", d)
		}
	}
	if !slices.Equal(hours, []int{0, 1, 2}) {
		t.Errorf("deleted hours %v, want [0 1 2] and never the current one", hours)
	}
	if recs := records(t, dir, archive.Filter{}); len(recs) != 2 || recs[0].EventID != "h3" {
		t.Errorf("left %d records", len(recs))
	}

	// a cap that the files fit: the newest stay
	dir2 := t.TempDir()
	c.Set(start)
	w2 := open(t, dir2, "wazera", c, archive.Limits{MaxSize: 1 << 20})
	for h := 0; h < 3; h++ {
		writeAt(t, w2, c, start.Add(time.Duration(h)*time.Hour), fmt.Sprint("k", h), 0)
	}
	c.Set(start.Add(5 * time.Hour))
	if gone, err := w2.Clean(); err != nil || len(gone) != 0 {
		t.Errorf("under the cap deleted %+v %v", gone, err)
	}
	// and one file too many: the oldest goes, reported undelivered
	info, _ := os.ReadDir(filepath.Join(dir2, "wazera"))
	var sizes []int64
	for _, e := range info {
		i, _ := e.Info()
		sizes = append(sizes, i.Size())
	}
	var total int64
	for _, s := range sizes {
		total += s
	}
	w2.SetLimits(archive.Limits{MaxSize: total - 1})
	gone, err = w2.Clean()
	if err != nil || len(gone) != 1 || gone[0].Hour.Hour() != 0 || !slices.Equal(gone[0].Undelivered, []string{"k0"}) {
		t.Errorf("one over the cap: %+v %v", gone, err)
	}
}

func TestSkipsTruncatedCorruptAndForeign(t *testing.T) {
	dir := t.TempDir()
	c := testutil.NewClock(t0)
	w := open(t, dir, "wazera", c, archive.Limits{})
	for _, id := range []string{"a", "b", "c"} {
		if _, err := w.WriteRequest(verified(id, `{}`)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "wazera", "*.jsonl"))
	if len(files) != 1 {
		t.Fatalf("files: %v", files)
	}
	raw, _ := os.ReadFile(files[0])
	lines := bytes.SplitAfter(raw, []byte("\n"))
	// line 2 corrupt, then the third record, then a last line cut mid-write
	var doctored []byte
	doctored = append(doctored, lines[0]...)
	doctored = append(doctored, "{\"kind\":\"request\",\"verd\x00\n"...)
	doctored = append(doctored, lines[2]...)
	doctored = append(doctored, lines[1][:len(lines[1])/2]...)
	os.WriteFile(files[0], doctored, 0o600)
	// a foreign file with an archive's name, and a file with another name
	foreign := filepath.Join(dir, "wazera", archive.FileName(t0, "other-000000000000"))
	os.WriteFile(foreign, []byte("hello, world\n{\"kind\":\"request\"}\n"), 0o600)
	stray := filepath.Join(dir, "wazera", "notes.txt")
	os.WriteFile(stray, []byte("x"), 0o600)

	var warnings []string
	r := &archive.Reader{Dir: dir, Warn: func(file string, line int, msg string) {
		warnings = append(warnings, fmt.Sprintf("%s:%d: %s", filepath.Base(file), line, msg))
	}}
	var ids []string
	if err := r.Scan(archive.Filter{}, func(rec *archive.Record) error { ids = append(ids, rec.EventID); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"a", "c"}) {
		t.Errorf("read %v, want [a c]", ids)
	}
	base := filepath.Base(files[0])
	want := []string{
		"notes.txt:0: not an archive file",
		base + ":2: corrupt record",
		base + ":4: truncated line",
		filepath.Base(foreign) + ":1: not an archive file",
	}
	if len(warnings) != len(want) {
		t.Fatalf("warnings %q, want %d", warnings, len(want))
	}
	for _, w := range want {
		if !slices.ContainsFunc(warnings, func(s string) bool { return strings.HasPrefix(s, w) }) {
			t.Errorf("no warning %q in %q", w, warnings)
		}
	}
}

func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	// two instances on one directory, both fsyncing before each forward
	var ws []*archive.Writer
	for range 2 {
		w, err := archive.Open(archive.Options{Dir: dir, Provider: "wazera", Limits: archive.Limits{Sync: archive.SyncAlways}})
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	const goroutines, each = 8, 200
	var wg sync.WaitGroup
	refs := make(chan archive.Ref, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			w := ws[g%2]
			for i := range each {
				ref, err := w.WriteRequest(verified(fmt.Sprintf("g%d-%d", g, i), strings.Repeat("b", 900)))
				if err != nil {
					t.Error(err)
					return
				}
				if err := w.WriteOutcome(ref, &archive.Outcome{Status: 200}); err != nil {
					t.Error(err)
				}
				refs <- ref
			}
		})
	}
	wg.Wait()
	close(refs)
	for _, w := range ws {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	recs := records(t, dir, archive.Filter{})
	if len(recs) != 2*goroutines*each {
		t.Fatalf("%d records, want %d", len(recs), 2*goroutines*each)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[r.ID] {
			t.Fatalf("record id %s twice", r.ID)
		}
		seen[r.ID] = true
	}
	for ref := range refs {
		if !seen[ref.ID] {
			t.Errorf("ref %s not in the archive", ref.ID)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "wazera", "*.jsonl"))
	if len(files) != 2 {
		t.Errorf("two instances wrote %d files, want 2", len(files))
	}
}

func TestSelect(t *testing.T) {
	dir := t.TempDir()
	base := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	c := testutil.NewClock(base)
	w := open(t, dir, "wazera", c, archive.Limits{})
	z := open(t, dir, "zavu", c, archive.Limits{})
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	writeAt(t, w, c, at(0), "failed", 500)
	writeAt(t, w, c, at(1), "ok", 200)
	writeAt(t, w, c, at(2), "retried", 500)
	writeAt(t, w, c, at(3), "noanswer", 0)
	writeAt(t, w, c, at(4), "replayed", 502)
	c.Set(at(5))
	if _, err := w.WriteRequest(&archive.Request{Verdict: archive.StoreError, EventID: "store", Secret: 0, CloudEventHead: []byte("{")}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteRequest(&archive.Request{Verdict: archive.Rejected, Reason: "no_match", Secret: -1}); err != nil {
		t.Fatal(err)
	}
	writeAt(t, z, c, at(6), "failed", 500) // same id, other provider
	writeAt(t, w, c, at(70), "retried", 200)
	writeAt(t, w, c, at(71), "failed", 500) // a retry that failed again
	c.Set(at(72))
	w.WriteOutcome(archive.Ref{ID: "x-1", EventID: "replayed"}, &archive.Outcome{Status: 200, Replay: true})
	w.WriteRequest(&archive.Request{Verdict: archive.Duplicate, EventID: "ok", Secret: 0})

	r := &archive.Reader{Dir: dir}
	sel := func(f archive.Filter, all bool) []string {
		t.Helper()
		recs, err := r.Select(f, all)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rec := range recs {
			out = append(out, rec.Provider+"/"+rec.EventID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    archive.Filter
		all  bool
		want []string
	}{
		{"never accepted", archive.Filter{}, false, []string{"wazera/failed", "wazera/noanswer", "wazera/store", "zavu/failed"}},
		{"provider", archive.Filter{Provider: "wazera"}, false, []string{"wazera/failed", "wazera/noanswer", "wazera/store"}},
		{"event ids", archive.Filter{EventIDs: []string{"noanswer", "ok"}}, false, []string{"wazera/noanswer"}},
		{"since", archive.Filter{Since: at(3)}, false, []string{"wazera/noanswer", "wazera/store", "zavu/failed", "wazera/failed"}},
		{"until", archive.Filter{Until: at(3)}, false, []string{"wazera/failed"}},
		{"all", archive.Filter{Provider: "wazera"}, true, []string{"wazera/failed", "wazera/ok", "wazera/retried", "wazera/noanswer", "wazera/replayed", "wazera/store"}},
		{"all in range", archive.Filter{Since: at(60)}, true, []string{"wazera/retried", "wazera/failed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sel(tc.f, tc.all); !slices.Equal(got, tc.want) {
				t.Errorf("selected %v, want %v", got, tc.want)
			}
		})
	}
	// the first record in range is the one selected
	recs, _ := r.Select(archive.Filter{Provider: "wazera", EventIDs: []string{"failed"}}, false)
	if len(recs) != 1 || !recs[0].Time.Equal(at(0)) {
		t.Errorf("selected %+v, want the first delivery", recs)
	}
}

func TestSyncAlwaysWritesThrough(t *testing.T) {
	dir := t.TempDir()
	c := testutil.NewClock(t0)
	w := open(t, dir, "wazera", c, archive.Limits{Sync: archive.SyncAlways})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				if _, err := w.WriteRequest(verified(fmt.Sprint(g, "-", i), "{}")); err != nil {
					t.Error(err)
				}
			}
		})
	}
	// the hour turns while they write: records go to the new file, and
	// waiting fsyncs of the old one still return
	c.Add(time.Hour)
	wg.Wait()
	if n := len(records(t, dir, archive.Filter{})); n != 16*50 {
		t.Errorf("%d records, want %d", n, 16*50)
	}
}

func TestClosedWriter(t *testing.T) {
	w := open(t, t.TempDir(), "wazera", testutil.NewClock(t0), archive.Limits{})
	w.Close()
	if _, err := w.WriteRequest(verified("x", "{}")); err != archive.ErrClosed {
		t.Errorf("write after Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOptionErrors(t *testing.T) {
	for _, o := range []archive.Options{
		{Provider: "wazera"},
		{Dir: t.TempDir(), Provider: "../x"},
		{Dir: t.TempDir(), Provider: ""},
		{Dir: t.TempDir(), Provider: "wazera", Limits: archive.Limits{Rejected: "all"}},
		{Dir: t.TempDir(), Provider: "wazera", Limits: archive.Limits{Sync: "never"}},
	} {
		if w, err := archive.Open(o); err == nil {
			w.Close()
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
}

func TestHourTurnCleansInTheBackground(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	c := testutil.NewClock(start)
	told := make(chan archive.Deleted, 10)
	w, err := archive.Open(archive.Options{Dir: dir, Provider: "wazera", Now: c.Now,
		Limits: archive.Limits{Retention: time.Hour, OnDelete: func(d archive.Deleted) { told <- d }}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeAt(t, w, c, start, "old", 0)
	writeAt(t, w, c, start.Add(2*time.Hour), "new", 200) // the 00Z file ended 1 h ago
	select {
	case d := <-told:
		if !d.Hour.Equal(start) || d.Reason != "retention" || !slices.Equal(d.Undelivered, []string{"old"}) {
			t.Errorf("deleted %+v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the hour turned and no file was deleted")
	}
}

// writeCalls returns the process's count of write system calls so far.
func writeCalls(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal("counting write(2) calls needs Linux's /proc/self/io:", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "syscw: "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatal("no syscw in /proc/self/io")
	return 0
}

// TestConcurrentRecordsShareWrites: records that concurrent requests write
// on one core share write(2) calls (a group write), and every one of them
// is in the file, whole, when its call returns.
func TestConcurrentRecordsShareWrites(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	dir := t.TempDir()
	w, err := archive.Open(archive.Options{Dir: dir, Provider: "wazera", CleanEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 32, 50
	body := []byte(`{"text":"` + strings.Repeat("x", 900) + `"}`)
	start := make(chan struct{})
	var wg sync.WaitGroup
	var missing atomic.Int64
	inFile := func(id string) bool {
		b, _ := os.ReadFile(filepath.Join(w.Dir(), archive.FileName(time.Now(), w.Instance())))
		return bytes.Contains(b, []byte(`"id":"`+id+`"`))
	}
	before := writeCalls(t)
	for g := range writers {
		wg.Go(func() {
			<-start
			for i := range each {
				id := fmt.Sprintf("evt-%d-%d", g, i)
				ref, err := w.WriteRequest(&archive.Request{Verdict: archive.Verified, EventID: id, Secret: 0, Body: body})
				if err != nil {
					t.Error(err)
					return
				}
				// the record is in the file now: a killed process would keep it
				if i%10 == 0 && !inFile(ref.ID) {
					missing.Add(1)
				}
				if err := w.WriteOutcome(ref, &archive.Outcome{Status: 200, Settled: archive.Committed}); err != nil {
					t.Error(err)
				}
				runtime.Gosched() // the rest of a request's work
			}
		})
	}
	close(start)
	wg.Wait()
	calls := writeCalls(t) - before
	w.Close()
	records := 0
	err = (&archive.Reader{Dir: dir, Warn: func(f string, l int, m string) { t.Errorf("%s:%d: %s", f, l, m) }}).
		Scan(archive.Filter{}, func(*archive.Record) error { records++; return nil })
	if err != nil || records != 2*writers*each {
		t.Errorf("%d records read back (%v), want %d", records, err, 2*writers*each)
	}
	if missing.Load() > 0 {
		t.Errorf("%d records were not in the file when WriteRequest returned", missing.Load())
	}
	t.Logf("%d records in %d write(2) calls", 2*writers*each, calls)
	if calls > writers*each/2 {
		t.Errorf("%d write(2) calls for %d records written by %d concurrent writers on one core: want them shared", calls, 2*writers*each, writers)
	}
}

// TestBodyAsJSON: a verified body that the caller parsed is kept as the
// JSON value it is, and the CloudEvent head as a CloudEvent with a null
// payload, where that reads back byte for byte and stays one line for
// every reader; a pretty-printed body (line breaks), one with whitespace
// around it, one with a U+2028 (a line end to JavaScript and Python), or
// one nested deeper than jq before 1.8 reads stays an escaped string.
// Records in the older form read as before; a reader of that older form
// refuses the newer records instead of taking their bodies for empty; a
// "ce_head" object whose payload is not null is a corrupt record.
func TestBodyAsJSON(t *testing.T) {
	dir := t.TempDir()
	c := testutil.NewClock(time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC))
	w := open(t, dir, "wazera", c, archive.Limits{})
	deep := func(n int) string { return `{"id":"e","a":` + strings.Repeat("[", n) + strings.Repeat("]", n) + "}" }
	bodies := map[string]struct {
		body string
		raw  bool
		head string // the CloudEvent head, when not verified()'s
	}{
		"compact":  {`{"id":"a","text":"é \" \\ \u2028 ✓","n":[1,2.5e3,null,true],"o":{}}`, true, ""},
		"tabs":     {"{\"id\":\"b\",\t\"x\": 1}", true, ""},
		"nested":   {deep(240), true, ""},
		"pretty":   {"{\n  \"id\": \"c\"\n}", false, ""},
		"space":    {` {"id":"d"}`, false, ""},
		"deep":     {deep(300), false, ""},
		"u2028":    {"{\"id\":\"f\",\"text\":\"a\u2028b\"}", false, ""},
		"u2029":    {"{\"id\":\"g\",\"text\":\"a\u2029b\"}", false, ""},
		"verydeep": {`{"id":"h","a":` + strings.Repeat(`{"a":`, 9998) + "1" + strings.Repeat("}", 9999), false, ""},
		// a text field with a U+2028, copied into the head as received
		"headsep": {"{\"id\":\"i\"}", true, "{\"specversion\":\"1.0\",\"id\":\"headsep\",\"data\":{\"text\":\"a\u2028b\",\"payload\":"},
	}
	ids := map[string]string{} // record id -> case
	for name, bc := range bodies {
		q := verified(name, bc.body)
		q.BodyJSON = true
		if bc.head != "" {
			q.CloudEventHead = []byte(bc.head)
		}
		ref, err := w.WriteRequest(q)
		if err != nil {
			t.Fatal(err)
		}
		ids[ref.ID] = name
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "wazera", "*.jsonl"))
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		var head struct{ ID string }
		json.Unmarshal([]byte(line), &head)
		name := ids[head.ID]
		asJSON := strings.Contains(line, `"body":{`)
		if asJSON != bodies[name].raw {
			t.Errorf("%s: body kept as JSON %v, want %v", name, asJSON, bodies[name].raw)
		}
		if got, want := strings.Contains(line, `"ce_head":{`), name != "headsep"; got != want {
			t.Errorf("%s: the head kept as a CloudEvent %v, want %v", name, got, want)
		}
		// a reader of the older form, "body" and "ce_head" as strings
		var older struct {
			Body   string `json:"body"`
			CEHead string `json:"ce_head"`
		}
		if err := json.Unmarshal([]byte(line), &older); err == nil {
			t.Errorf("%s: the older form's reader takes the record, body %q", name, older.Body)
		}
	}
	// the older form, and a ce_head object whose payload is not null
	old := `{"kind":"request","verdict":"verified","id":"x-1","time":"2026-05-01T09:00:00Z","provider":"wazera","event_id":"old","body":"{\"id\":\"old\"}","ce_head":"{\"specversion\":\"1.0\",\"data\":{\"payload\":"}` + "\n" +
		`{"kind":"request","verdict":"verified","id":"x-2","time":"2026-05-01T09:00:00Z","provider":"wazera","event_id":"bad","body":{},"ce_head":{"data":{"payload":{}}}}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "wazera", archive.FileName(c.Now(), "old-000000000000")), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	r := &archive.Reader{Dir: dir, Warn: func(f string, l int, msg string) { warnings = append(warnings, msg) }}
	got := map[string]*archive.Record{}
	if err := r.Scan(archive.Filter{}, func(rec *archive.Record) error { got[rec.EventID] = rec; return nil }); err != nil {
		t.Fatal(err)
	}
	for name, bc := range bodies {
		rec := got[name]
		head := bc.head
		if head == "" {
			head = `{"specversion":"1.0","id":"` + name + `","data":{"payload":`
		}
		if rec == nil || string(rec.BodyBytes()) != bc.body || rec.CEHead != head {
			t.Errorf("%s: read back %.200v", name, rec)
		}
	}
	if rec := got["old"]; rec == nil || rec.Body != `{"id":"old"}` || rec.CEHead != `{"specversion":"1.0","data":{"payload":` {
		t.Errorf("older record: %+v", rec)
	}
	if got["bad"] != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "ce_head") {
		t.Errorf("a ce_head with a payload: yielded %v, warnings %q", got["bad"] != nil, warnings)
	}
}
