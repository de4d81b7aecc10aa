package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/wagate/caddy-webhook/archive"
	"github.com/wagate/caddy-webhook/dedupe"
	"github.com/wagate/caddy-webhook/verify"
)

func TestUnmarshalArchive(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *Archive
		err  string
	}{
		{`archive /var/lib/w`, &Archive{Dir: "/var/lib/w"}, ""},
		{"archive {env.DIR} {\n retention 30d\n max_size 512MiB\n rejected body\n sync always\n}",
			&Archive{Dir: "{env.DIR}", Retention: caddy.Duration(30 * 24 * time.Hour), MaxSize: 512 << 20, Rejected: "body", Sync: "always"}, ""},
		{`archive`, nil, "wrong argument count"},
		{`archive a b`, nil, "wrong argument count"},
		{"archive /d {\n retention 1d\n retention 2d\n}", nil, "retention given twice"},
		{"archive /d {\n keep 1d\n}", nil, `unrecognized archive option "keep"`},
		{"archive /d {\n rejected all\n}", nil, `rejected "all"`},
		{"archive /d {\n sync never\n}", nil, `sync "never"`},
		{"archive /d {\n max_size lots\n}", nil, `max_size "lots"`},
		{"archive /d {\n retention -1h\n}", nil, "positive duration"},
	} {
		d := caddyfile.NewTestDispenser(tc.in)
		d.Next() // the subdirective's name, as UnmarshalCaddyfile leaves it
		var h Handler
		err := h.unmarshalArchive(d)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.err == "" && *h.Archive != *tc.want:
			t.Errorf("%q: %+v, want %+v", tc.in, *h.Archive, *tc.want)
		}
	}
}

// archiving returns a handler for wazera with its archive provisioned
// in dir, released when the test ends.
func archiving(t *testing.T, dir string, a Archive) (*Handler, error) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	v, err := verify.New(verify.Wazera, verify.Options{Secrets: []string{"s0", "s1"}})
	if err != nil {
		t.Fatal(err)
	}
	a.Dir = dir
	h := &Handler{Provider: verify.Wazera, Format: "cloudevents", Archive: &a, verifier: v, logger: zap.NewNop()}
	err = h.provisionArchive(ctx)
	t.Cleanup(func() { h.cleanupArchive() })
	return h, err
}

// TestArchiveHooks: a verified request's record holds the headers as
// received (before the handler strips the signature), the body, the event,
// the matching secret's position and the CloudEvent head; its outcome
// follows; a reject follows the rejected policy.
func TestArchiveHooks(t *testing.T) {
	dir := t.TempDir()
	h, err := archiving(t, dir, Archive{Rejected: "headers"})
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := verify.New(verify.Wazera, verify.Options{Secrets: []string{"s1"}})
	body := []byte(`{"id":"evt_9","event":"message.received","timestamp":` + strconv.FormatInt(time.Now().Unix(), 10) + `,"data":{"text":"hi"}}`)
	sig, err := signer.Sign(body, verify.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "http://gw.example/wazera?x=1", nil)
	r.RemoteAddr = "198.51.100.4:1234"
	for k, v := range sig {
		r.Header[k] = v
	}
	r.Header.Set("Cookie", "sid=secret")
	received := h.archiveHeader(r)
	ev, err := h.verifier.Verify(r.Header, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range h.verifier.SignatureHeaders() {
		r.Header.Del(name) // as ServeHTTP does before forwarding a CloudEvent
	}
	ref, err := h.archiveVerified(r, received, body, &ev, ev.AppendCloudEventHead(nil))
	if err != nil || ref.ID == "" || ref.EventID != ev.ID {
		t.Fatalf("archiveVerified: %+v %v", ref, err)
	}
	h.archiveOutcome(ref, 502, errors.New("bad gateway"), 40*time.Millisecond, archive.Released)

	r2 := httptest.NewRequest("POST", "http://gw.example/wazera", nil)
	r2.Header.Set("X-Wazera-Signature", "sha256=00")
	rref, err := h.archiveRequest(r2, nil, []byte("{}"), archive.Rejected, "no_match")
	if err != nil || rref.ID == "" {
		t.Fatalf("reject: %+v %v", rref, err)
	}

	var recs []*archive.Record
	err = (&archive.Reader{Dir: dir, Warn: func(f string, l int, m string) { t.Errorf("%s:%d: %s", f, l, m) }}).
		Scan(archive.Filter{}, func(rec *archive.Record) error { recs = append(recs, rec); return nil })
	if err != nil || len(recs) != 3 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	req, out, rej := recs[0], recs[1], recs[2]
	if req.Verdict != "verified" || req.EventID != ev.ID || req.EventType != "message.received" || req.Secret == nil || *req.Secret != 1 ||
		req.Route != "gw.example/wazera" || req.Path != "/wazera?x=1" || req.Remote != "198.51.100.4:1234" || req.Format != "cloudevents" ||
		req.Provider != "wazera" || string(req.BodyBytes()) != string(body) {
		t.Errorf("request record: %+v", req)
	}
	if req.Headers.Get("X-Wazera-Signature") != sig.Get("X-Wazera-Signature") || req.Headers.Get("Cookie") != archive.Redacted {
		t.Errorf("headers as received, credentials redacted: %v", req.Headers)
	}
	if ce, _, err := req.Forwarded(""); err != nil || string(ce) != string(ev.AppendCloudEvent(nil)) {
		t.Errorf("the CloudEvent rebuilt from the record:\n%s\nwant\n%s", ce, ev.AppendCloudEvent(nil))
	}
	if out.Ref != ref.ID || out.Status != 502 || out.Error != "bad gateway" || out.Settled != "released" || out.DurationOf() != 40*time.Millisecond {
		t.Errorf("outcome: %+v", out)
	}
	if rej.Verdict != "rejected" || rej.Reason != "no_match" || rej.Secret != nil || len(rej.BodyBytes()) != 0 {
		t.Errorf("reject, rejected headers: %+v", rej)
	}
	// the outcome of a zero ref (rejected off) writes nothing
	h.archiveOutcome(archive.Ref{}, 200, nil, 0, "none")
}

// TestArchiveOffIsFree: with no archive the hooks do nothing and allocate
// nothing.
func TestArchiveOffIsFree(t *testing.T) {
	h := &Handler{}
	r := httptest.NewRequest("POST", "/", nil)
	ev := verify.Event{ID: "e"}
	allocs := testing.AllocsPerRun(100, func() {
		if h.archiveHeader(r) != nil {
			t.Fatal("a header copy with the archive off")
		}
		ref, err := h.archiveVerified(r, nil, nil, &ev, nil)
		h.archiveOutcome(ref, 200, err, time.Millisecond, "committed")
	})
	if allocs != 0 {
		t.Errorf("%v allocations a request with the archive off", allocs)
	}
	if err := h.provisionArchive(caddy.Context{}); err != nil || h.cleanupArchive() != nil {
		t.Errorf("provision and cleanup of no archive: %v", err)
	}
}

// TestArchiveSharedAcrossReloads: two handlers on one directory and
// provider (a reload: the new config provisions before the old one is
// cleaned up) share one writer and one file; the writer closes with the
// last of them. Other limits apply to the shared writer.
func TestArchiveSharedAcrossReloads(t *testing.T) {
	dir := t.TempDir()
	old, err := archiving(t, dir, Archive{})
	if err != nil {
		t.Fatal(err)
	}
	next, err := archiving(t, dir, Archive{Rejected: "off"})
	if err != nil {
		t.Fatal(err)
	}
	if old.Archive.w != next.Archive.w {
		t.Fatal("a reload opened a second writer")
	}
	r := httptest.NewRequest("POST", "/wazera", nil)
	if ref, _ := next.archiveRequest(r, nil, nil, archive.Rejected, "no_match"); ref.ID != "" {
		t.Error("the newest config's rejected off does not apply to the shared writer")
	}
	old.cleanupArchive()
	if _, err := next.archiveVerified(r, nil, []byte("{}"), &verify.Event{ID: "e1"}, nil); err != nil {
		t.Fatalf("the writer closed while a config still uses it: %v", err)
	}
	next.cleanupArchive()
	if _, err := next.archiveVerified(r, nil, []byte("{}"), &verify.Event{ID: "e2"}, nil); !errors.Is(err, archive.ErrClosed) {
		t.Errorf("after the last cleanup: %v, want the writer closed", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "wazera", "*.jsonl"))
	if len(files) != 1 {
		t.Errorf("files %v, want one", files)
	}
}

// TestArchiveStartErrors: an unwritable directory, an unset placeholder
// and bad options are config errors at start.
func TestArchiveStartErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	os.Unsetenv("WEBHOOK_TEST_UNSET_DIR")
	for _, tc := range []struct {
		dir  string
		a    Archive
		want string
	}{
		{file, Archive{}, "archive " + file},
		{"{env.WEBHOOK_TEST_UNSET_DIR}", Archive{}, "expanded to nothing"},
		{t.TempDir(), Archive{Sync: "never"}, `sync "never"`},
		{t.TempDir(), Archive{Rejected: "all"}, `rejected "all"`},
		{t.TempDir(), Archive{Retention: -1}, "retention"},
	} {
		if _, err := archiving(t, tc.dir, tc.a); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %+v: %v, want %q", tc.dir, tc.a, err, tc.want)
		}
	}
	if _, err := archiving(t, "", Archive{}); err == nil {
		t.Error("no directory: no error")
	}
}

// TestArchiveMetrics: a failed write and a deleted file with undelivered
// events are counted.
func TestArchiveMetrics(t *testing.T) {
	dir := t.TempDir()
	h, err := archiving(t, dir, Archive{})
	if err != nil {
		t.Fatal(err)
	}
	m := archiveCollectors()
	before := counterValue(m.writeErrs.WithLabelValues("wazera"))
	lostBefore := counterValue(m.undelivered.WithLabelValues("wazera"))
	filesBefore := counterValue(m.deleted.WithLabelValues("wazera", "retention"))

	// another instance's file from ten days ago: one event delivered, two never
	past := time.Now().Add(-10 * 24 * time.Hour)
	old, err := archive.Open(archive.Options{Dir: dir, Provider: "wazera", Now: func() time.Time { return past }, CleanEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"lost1", "lost2", "fine"} {
		ref, _ := old.WriteRequest(&archive.Request{Verdict: archive.Verified, EventID: id, Secret: 0})
		if id == "fine" {
			old.WriteOutcome(ref, &archive.Outcome{Status: 200})
		}
	}
	old.Close()
	gone, err := h.Archive.w.Clean()
	if err != nil || len(gone) != 1 {
		t.Fatalf("clean: %+v %v", gone, err)
	}
	if got := counterValue(m.undelivered.WithLabelValues("wazera")) - lostBefore; got != 2 {
		t.Errorf("undelivered deleted counted %v, want 2", got)
	}
	if got := counterValue(m.deleted.WithLabelValues("wazera", "retention")) - filesBefore; got != 1 {
		t.Errorf("deleted files counted %v, want 1", got)
	}
	r := httptest.NewRequest("POST", "/wazera", nil)
	h.Archive.w.Close() // a write that fails
	if _, err := h.archiveVerified(r, nil, nil, &verify.Event{ID: "x"}, nil); err == nil {
		t.Fatal("write to a closed archive succeeded")
	}
	h.archiveOutcome(archive.Ref{ID: "a-1"}, 200, nil, 0, "committed")
	if got := counterValue(m.writeErrs.WithLabelValues("wazera")) - before; got != 2 {
		t.Errorf("write errors counted %v, want 2", got)
	}
	reg := prometheus.NewRegistry()
	if _, err := registerArchiveMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := registerArchiveMetrics(reg); err != nil {
		t.Errorf("a second registration (a reload): %v", err)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// BenchmarkArchiveHooks: what the archive adds to one verified 1 KB
// webhook in ServeHTTP: the header copy, the request record before
// forwarding and the outcome after, from 32 concurrent requests a core.
//
//	go test ./caddymodule -run '^$' -bench ArchiveHooks -benchmem -cpu 1
func BenchmarkArchiveHooks(b *testing.B) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	v, _ := verify.New(verify.Wazera, verify.Options{Secrets: []string{"s"}})
	h := &Handler{Provider: verify.Wazera, Format: "cloudevents", Archive: &Archive{Dir: b.TempDir()}, verifier: v, logger: zap.NewNop()}
	if err := h.provisionArchive(ctx); err != nil {
		b.Fatal(err)
	}
	defer h.cleanupArchive()
	body := []byte(`{"id":"evt_1","event":"message.received","timestamp":` + strconv.FormatInt(time.Now().Unix(), 10) + `,"data":{"text":"` + strings.Repeat("x", 940) + `"}}`)
	sig, _ := v.Sign(body, verify.SignOptions{})
	ev, err := v.Verify(sig, body)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.SetParallelism(32) // as under a closed load of 32 concurrent requests a core
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("POST", "/wazera", nil)
		r.Header = sig.Clone()
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("User-Agent", "Wazera-Webhooks/2.1")
		for pb.Next() {
			received := h.archiveHeader(r)
			head := cloudEventHead(&ev) // as ServeHTTP builds it
			ref, err := h.archiveVerified(r, received, body, &ev, *head)
			putHead(head)
			if err != nil {
				b.Fatal(err)
			}
			h.archiveOutcome(ref, 200, nil, 3*time.Millisecond, archive.Committed)
		}
	})
}

// recordFirst is a dedupe store that, at each claim, looks in the archive
// for the event's verified request record.
type recordFirst struct {
	dedupe.Store
	dir      string
	archived map[string]bool // event id -> its record was in the file at the claim
}

func (s *recordFirst) Claim(ctx context.Context, key dedupe.Key, ttl time.Duration) (dedupe.Claim, error) {
	found := false
	(&archive.Reader{Dir: s.dir}).Scan(archive.Filter{EventIDs: []string{key.ID}}, func(rec *archive.Record) error {
		found = found || (rec.Kind == archive.KindRequest && rec.Verdict == archive.Verified)
		return nil
	})
	s.archived[key.ID] = s.archived[key.ID] || found
	return s.Store.Claim(ctx, key, ttl)
}

// TestArchiveRecordBeforeClaim: a verified event's record is in its file
// before the event is claimed, so a gateway killed after the claim (which
// a Redis store keeps for in_flight_ttl) still has the event for replay.
// When the claim keeps the event from the upstream, the outcome record
// gives the verdict (duplicate, in_flight), and Select reads it.
func TestArchiveRecordBeforeClaim(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Provider: verify.Wazera, Secrets: []string{"s0"}, Archive: &Archive{Dir: dir}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	mem := dedupe.NewMemory(dedupe.MemoryOptions{})
	store := &recordFirst{Store: mem, dir: dir, archived: map[string]bool{}}
	h.store = store
	events := map[string]signed{"new": signedFor(t, h, "evt_new"), "busy": signedFor(t, h, "evt_busy")}
	// another delivery holds the busy event
	if c, err := mem.Claim(context.Background(), dedupe.Key{Provider: verify.Wazera, ID: events["busy"].id}, time.Minute); err != nil || c.Outcome != dedupe.Claimed {
		t.Fatal(c, err)
	}
	forwarded := 0
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		forwarded++
		w.WriteHeader(http.StatusOK)
		return nil
	})
	send := func(name string) int { return serveOnce(h, events[name], next) }
	for _, tc := range []struct {
		name   string
		status int
	}{{"new", 200}, {"new", 200}, {"busy", 409}} {
		if got := send(tc.name); got != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.status)
		}
	}
	newID, busyID := events["new"].id, events["busy"].id
	if forwarded != 1 {
		t.Errorf("forwarded %d, want 1 (the duplicate and the event in flight are not)", forwarded)
	}
	if !store.archived[newID] || !store.archived[busyID] {
		t.Errorf("a verified record was in the archive at the claim: %v, want both", store.archived)
	}

	// the requests and their outcomes, in order
	var got []string
	err := (&archive.Reader{Dir: dir}).Scan(archive.Filter{}, func(rec *archive.Record) error {
		got = append(got, fmt.Sprintf("%s %s %s %d %s", rec.Kind, rec.Verdict, rec.EventID, rec.Status, rec.Settled))
		return nil
	})
	want := []string{
		"request verified " + newID + " 0 ", "outcome  " + newID + " 200 committed",
		"request verified " + newID + " 0 ", "outcome duplicate " + newID + " 200 done",
		"request verified " + busyID + " 0 ", "outcome in_flight " + busyID + " 409 none",
	}
	if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("records:\n%s\nwant\n%s\n(%v)", strings.Join(got, "\n"), strings.Join(want, "\n"), err)
	}
	// a replay sends neither: the new event was accepted, and the busy
	// one's request passed it to the delivery that holds it (whose own
	// record is the one to replay if it fails)
	sel, err := (&archive.Reader{Dir: dir}).Select(archive.Filter{}, false)
	if err != nil || len(sel) != 0 {
		t.Errorf("Select: %v %v, want nothing", sel, err)
	}
}

// signed is a wazera event signed for a handler's verifier, with the id
// the verifier gives it (a digest of the body).
type signed struct {
	body []byte
	sig  http.Header
	id   string
}

func signedFor(t *testing.T, h *Handler, name string) signed {
	t.Helper()
	body := []byte(`{"id":"` + name + `","event":"message.received","timestamp":` + strconv.FormatInt(time.Now().Unix(), 10) + `,"data":{}}`)
	sig, err := h.verifier.Sign(body, verify.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := h.verifier.Verify(sig, body)
	if err != nil {
		t.Fatal(err)
	}
	return signed{body, sig, ev.ID}
}

// serveOnce sends e through h to next, and returns the status the client
// got: the handler's error's, or what was written.
func serveOnce(h *Handler, e signed, next caddyhttp.Handler) int {
	r := httptest.NewRequest("POST", "http://gw.example/wazera", bytes.NewReader(e.body))
	r.Header = e.sig.Clone()
	w := httptest.NewRecorder()
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
	err := h.ServeHTTP(w, r, next)
	if he, ok := errors.AsType[caddyhttp.HandlerError](err); ok {
		return he.StatusCode
	}
	return w.Code
}
