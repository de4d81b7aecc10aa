package webhookcmd_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/caddy-webhook/archive"
	"github.com/wagate/caddy-webhook/internal/redistest"
	"github.com/wagate/caddy-webhook/internal/testutil"
	"github.com/wagate/caddy-webhook/verify"
	"github.com/wagate/caddy-webhook/verify/samples"
)

// archived is an event written to a test archive as the gateway writes it.
type archived struct {
	id        string
	ref       archive.Ref
	body      []byte
	header    http.Header
	cloud     []byte // the CloudEvent the gateway forwarded
	eventType string
}

// gatewayArchive writes an archive as a gateway with provider wazera and
// format cloudevents would have, from real signed requests:
//
//	failed    verified, the upstream answered 500
//	ok        verified, the upstream answered 200
//	retried   verified, 503, then a provider retry an hour later got 200
//	killed    verified, no outcome (the gateway was killed while forwarding)
//	a reject  the signature did not match (body archived: rejected body)
//
// The records are from 3 hours ago (the retry from 2 hours ago).
func gatewayArchive(t *testing.T, dir string) map[string]*archived {
	t.Helper()
	now := time.Now()
	at := now.Add(-3 * time.Hour)
	clock := func() time.Time { return at }
	w, err := archive.Open(archive.Options{Dir: dir, Provider: verify.Wazera, Now: clock, CleanEvery: -1,
		Limits: archive.Limits{Rejected: archive.RejectedBody}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	v, err := verify.New(verify.Wazera, verify.Options{Secrets: []string{"old-secret", secrets[verify.Wazera]}})
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := verify.New(verify.Wazera, verify.Options{Secrets: []string{secrets[verify.Wazera]}})
	events := map[string]*archived{}
	write := func(name string, status int) *archived {
		t.Helper()
		a := events[name]
		if a == nil {
			body, h := signedEvent(t, name, now.Add(-3*time.Hour))
			h.Set("Authorization", "Bearer not-for-the-archive")
			a = &archived{body: body, header: h}
			events[name] = a
		}
		ev, err := v.Verify(a.header, a.body)
		if err != nil {
			t.Fatal(err)
		}
		a.id, a.eventType, a.cloud = ev.ID, ev.Type, ev.AppendCloudEvent(nil)
		a.ref, err = w.WriteRequest(&archive.Request{
			Route: "127.0.0.1/wazera", Remote: "127.0.0.1:40000", Method: "POST", Host: "127.0.0.1", Path: "/wazera",
			Header: a.header, Body: a.body, Verdict: archive.Verified, EventID: ev.ID, EventType: ev.Type, Secret: ev.Secret,
			Format: "cloudevents", CloudEventHead: ev.AppendCloudEventHead(nil),
		})
		if err != nil {
			t.Fatal(err)
		}
		if status != 0 {
			if err := w.WriteOutcome(a.ref, &archive.Outcome{Status: status, Duration: time.Millisecond, Settled: archive.None}); err != nil {
				t.Fatal(err)
			}
		}
		return a
	}
	write("failed", 500)
	write("ok", 200)
	write("retried", 503)
	write("killed", 0)
	// a live request that a wrong configured secret rejected
	body, _ := samples.Body(verify.Wazera, "message.delivered", samples.Values{ID: "rejected", Time: now})
	h, _ := signer.Sign(body, verify.SignOptions{})
	h.Set("Content-Type", "application/json")
	ref, err := w.WriteRequest(&archive.Request{Method: "POST", Host: "127.0.0.1", Path: "/wazera", Header: h, Body: body,
		Verdict: archive.Rejected, Reason: "no_match", Secret: -1})
	if err != nil {
		t.Fatal(err)
	}
	events["rejected"] = &archived{ref: ref, body: body, header: h}
	at = now.Add(-2 * time.Hour)
	write("retried", 200)
	return events
}

// recorder is an upstream that records what it receives and answers
// status.
type recorder struct {
	*httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	got    []*received
}

type received struct {
	header http.Header
	body   []byte
}

func newRecorder(t *testing.T, status int) *recorder {
	u := &recorder{}
	u.status.Store(int32(status))
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, &received{r.Header.Clone(), body})
		u.mu.Unlock()
		w.WriteHeader(int(u.status.Load()))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *recorder) ids() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var ids []string
	for _, r := range u.got {
		ids = append(ids, r.header.Get("Webhook-Event-Id"))
	}
	return ids
}

func (u *recorder) reset() {
	u.mu.Lock()
	u.got = nil
	u.mu.Unlock()
}

func replay(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	return caddy(t, nil, append([]string{"webhook", "replay", "--archive", dir, "--rate", "1000"}, args...)...)
}

// TestReplayNeverAccepted: replay sends exactly the events never accepted
// (not the one a provider retry delivered), each once, as the CloudEvent
// the gateway forwarded, with the Webhook-* headers; a second replay sends
// nothing.
func TestReplayNeverAccepted(t *testing.T) {
	dir := t.TempDir()
	events := gatewayArchive(t, dir)
	up := newRecorder(t, 200)

	out, stderr, code := replay(t, dir, "--dry-run", "--to", up.URL)
	if code != 0 || strings.Count(out, "would send") != 2 || !strings.Contains(out, events["failed"].id) || !strings.Contains(out, events["killed"].id) || len(up.ids()) != 0 {
		t.Fatalf("dry run: %d\n%s%s", code, out, stderr)
	}
	out, _, _ = replay(t, dir, "--dry-run", "--all", "--to", up.URL)
	if strings.Count(out, "would send") != 4 {
		t.Errorf("--all --dry-run lists every verified event once:\n%s", out)
	}

	out, stderr, code = replay(t, dir, "--to", up.URL)
	if code != 0 || !strings.Contains(out, "selected 2, sent 2, accepted 2, failed 0, skipped 0") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, stderr)
	}
	if got := up.ids(); !slices.Equal(got, []string{events["failed"].id, events["killed"].id}) {
		t.Fatalf("the upstream received %v", got)
	}
	for i, name := range []string{"failed", "killed"} {
		r, want := up.got[i], events[name]
		if !bytes.Equal(r.body, want.cloud) {
			t.Errorf("%s: sent\n%s\nwant the gateway's CloudEvent\n%s", name, r.body, want.cloud)
		}
		for k, v := range map[string]string{
			"Content-Type": verify.CloudEventContentType, "Webhook-Provider": verify.Wazera, "Webhook-Event-Id": want.id,
			"Webhook-Event-Type": want.eventType, "Webhook-Replay": "true", "Authorization": "", "X-Wazera-Signature": "",
		} {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s: header %s = %q, want %q", name, k, got, v)
			}
		}
	}

	up.reset()
	out, stderr, code = replay(t, dir, "--to", up.URL)
	if code != 0 || !strings.Contains(out, "selected 0, sent 0") || len(up.ids()) != 0 {
		t.Errorf("second replay: exit %d, sent %v\n%s%s", code, up.ids(), out, stderr)
	}
	// the replays' outcomes are in the archive, marked
	var replays int
	(&archive.Reader{Dir: dir}).Scan(archive.Filter{}, func(r *archive.Record) error {
		if r.Kind == archive.KindOutcome && r.Replay {
			replays++
			if r.Status != 200 || (r.Ref != events["failed"].ref.ID && r.Ref != events["killed"].ref.ID) {
				t.Errorf("replay outcome %+v", r)
			}
		}
		return nil
	})
	if replays != 2 {
		t.Errorf("%d replay outcomes archived, want 2", replays)
	}
}

// TestReplayUnreachable: every event fails, none is marked accepted, exit
// status 1; once the app is back, the same events go.
func TestReplayUnreachable(t *testing.T) {
	dir := t.TempDir()
	events := gatewayArchive(t, dir)
	dead := fmt.Sprintf("http://127.0.0.1:%d/hooks", testutil.FreePort())
	out, stderr, code := replay(t, dir, "--to", dead)
	if code != 1 || !strings.Contains(out, "selected 2, sent 2, accepted 0, failed 2, skipped 0") {
		t.Fatalf("unreachable: exit %d\n%s%s", code, out, stderr)
	}
	if strings.Count(stderr, "failed: wazera") != 2 || !strings.Contains(stderr, "connection refused") {
		t.Errorf("each failure is reported:\n%s", stderr)
	}

	// an app that answers 500 is no better
	up := newRecorder(t, 500)
	if out, _, code := replay(t, dir, "--to", up.URL); code != 1 || !strings.Contains(out, "accepted 0, failed 2") {
		t.Fatalf("500: exit %d\n%s", code, out)
	}
	up.status.Store(202)
	up.reset()
	if out, _, code := replay(t, dir, "--to", up.URL); code != 0 || !strings.Contains(out, "accepted 2") {
		t.Fatalf("after the outage: exit %d\n%s", code, out)
	}
	if got := up.ids(); !slices.Equal(got, []string{events["failed"].id, events["killed"].id}) {
		t.Errorf("after the outage the upstream received %v", got)
	}
}

// TestReplayRawAndFilters: --format raw sends the body and headers as
// received (no credentials); --event-id, --provider, --since, --from and
// --until narrow the selection.
func TestReplayRawAndFilters(t *testing.T) {
	dir := t.TempDir()
	events := gatewayArchive(t, dir)
	up := newRecorder(t, 200)
	dry := func(args ...string) int {
		t.Helper()
		out, stderr, code := replay(t, dir, append([]string{"--dry-run", "--to", up.URL}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d %s", args, code, stderr)
		}
		return strings.Count(out, "would send")
	}
	hour := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--event-id", events["killed"].id}, 1},
		{[]string{"--event-id", events["killed"].id, "--event-id", events["ok"].id}, 1},
		{[]string{"--event-id", events["ok"].id, "--all"}, 1},
		{[]string{"--provider", "zavu"}, 0},
		{[]string{"--provider", "wazera"}, 2},
		{[]string{"--since", "1h"}, 0},
		{[]string{"--since", "4h"}, 2},
		{[]string{"--from", hour(-4 * time.Hour), "--until", hour(-150 * time.Minute)}, 2},
		{[]string{"--until", hour(-4 * time.Hour)}, 0},
		{[]string{"--all", "--since", "150m"}, 1}, // the retry
	} {
		if got := dry(tc.args...); got != tc.want {
			t.Errorf("%v selected %d, want %d", tc.args, got, tc.want)
		}
	}
	for _, bad := range [][]string{
		{"--since", "2h", "--from", hour(0)},
		{"--format", "xml"},
		{"--rate", "0"},
		{"--since", "yesterday"},
	} {
		if _, stderr, code := replay(t, dir, append([]string{"--to", up.URL}, bad...)...); code == 0 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q", bad, code, stderr)
		}
	}
	if _, stderr, code := replay(t, dir); code == 0 || !strings.Contains(stderr, "--to is required") {
		t.Errorf("no --to: %d %s", code, stderr)
	}

	out, stderr, code := replay(t, dir, "--to", up.URL, "--format", "raw", "--event-id", events["killed"].id)
	if code != 0 || len(up.got) != 1 {
		t.Fatalf("raw: exit %d\n%s%s", code, out, stderr)
	}
	r, want := up.got[0], events["killed"]
	if !bytes.Equal(r.body, want.body) {
		t.Errorf("raw body:\n%s\nwant\n%s", r.body, want.body)
	}
	if r.header.Get("X-Wazera-Signature") != want.header.Get("X-Wazera-Signature") || r.header.Get("Content-Type") != "application/json" ||
		r.header.Get("Authorization") != "" || r.header.Get("Webhook-Replay") != "true" || r.header.Get("Webhook-Event-Id") != want.id {
		t.Errorf("raw headers: %v", r.header)
	}
}

// TestReplayRedis: with --redis, replay claims each event in the gateway's
// dedupe store: an id the store marks done is skipped (and counts as
// accepted), one in flight is skipped (exit 1), a delivered one is
// committed, a failed one released; --key-prefix names the store's keys.
func TestReplayRedis(t *testing.T) {
	srv, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	events := gatewayArchive(t, dir)
	failed, killed := events["failed"].id, events["killed"].id
	key := func(id string) string { return "gw1:wazera:" + id }
	up := newRecorder(t, 500)

	// the app fails: the claim is released, nothing is left in the store
	out, stderr, code := replay(t, dir, "--to", up.URL, "--redis", srv.Addr, "--key-prefix", "gw1:")
	if code != 1 || !strings.Contains(out, "sent 2, accepted 0, failed 2") {
		t.Fatalf("500 with redis: exit %d\n%s%s", code, out, stderr)
	}
	for _, id := range []string{failed, killed} {
		if v, _ := srv.Do("EXISTS", key(id)); v != "0" {
			t.Errorf("%s: a released claim must leave no key, EXISTS = %s", id, v)
		}
	}

	// a provider retry delivered "failed" meanwhile; "killed" is in flight
	srv.Do("SET", key(failed), "done")
	srv.Do("SET", key(killed), "0123456789abcdef0123456789abcdef", "PX", "60000")
	up.status.Store(200)
	up.reset()
	out, stderr, code = replay(t, dir, "--to", up.URL, "--redis", srv.Addr, "--key-prefix", "gw1:")
	if code != 1 || !strings.Contains(out, "selected 2, sent 0, accepted 1, failed 0, skipped 2") || len(up.ids()) != 0 {
		t.Fatalf("done and in flight: exit %d, sent %v\n%s%s", code, up.ids(), out, stderr)
	}
	if !strings.Contains(stderr, "skipped: wazera "+killed) {
		t.Errorf("the in-flight skip is explained:\n%s", stderr)
	}

	// the in-flight delivery failed and was released: replay delivers and commits
	srv.Do("DEL", key(killed))
	out, stderr, code = replay(t, dir, "--to", up.URL, "--redis", srv.Addr, "--key-prefix", "gw1:")
	if code != 0 || !strings.Contains(out, "selected 1, sent 1, accepted 1") || !slices.Equal(up.ids(), []string{killed}) {
		t.Fatalf("delivery: exit %d, sent %v\n%s%s", code, up.ids(), out, stderr)
	}
	if v, _ := srv.Do("GET", key(killed)); v != "done" {
		t.Errorf("a delivered event is committed: GET = %q", v)
	}
	// the archive now says both are accepted: a replay without redis sends nothing
	up.reset()
	if out, _, code := replay(t, dir, "--to", up.URL); code != 0 || !strings.Contains(out, "selected 0") || len(up.ids()) != 0 {
		t.Errorf("after: exit %d, sent %v\n%s", code, up.ids(), out)
	}
	// an unreachable Redis is an error before anything is sent
	if _, stderr, code := replay(t, dir, "--all", "--to", up.URL, "--redis", fmt.Sprintf("127.0.0.1:%d", testutil.FreePort())); code != 1 || !strings.Contains(stderr, "--redis") || len(up.ids()) != 0 {
		t.Errorf("unreachable redis: exit %d %s", code, stderr)
	}
}

// TestReplaySkipsBadLines: a truncated last line and a foreign file are
// warned about, with the file and line, and the rest is replayed.
func TestReplaySkipsBadLines(t *testing.T) {
	dir := t.TempDir()
	events := gatewayArchive(t, dir)
	files, _ := filepath.Glob(filepath.Join(dir, "wazera", "*.jsonl"))
	if len(files) != 2 {
		t.Fatalf("files %v, want the hour of the first deliveries and the retry's", files)
	}
	last := files[1]
	f, _ := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"kind":"outcome","id":"x-1","ref":"` + events["killed"].ref.ID + `","time":"2026-05-01T`) // killed mid-write
	f.Close()
	foreign := filepath.Join(dir, "wazera", archive.FileName(time.Now().Add(-time.Hour), "other-000000000000"))
	os.WriteFile(foreign, []byte("PK\x03\x04 not json\n"), 0o600)
	lines := strings.Count(mustRead(t, last), "\n")

	up := newRecorder(t, 200)
	out, stderr, code := replay(t, dir, "--to", up.URL)
	if code != 0 || !strings.Contains(out, "accepted 2") {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(stderr, fmt.Sprintf("warning: %s:%d: truncated line", last, lines+1)) ||
		!strings.Contains(stderr, "warning: "+foreign+":1: not an archive file") {
		t.Errorf("warnings:\n%s", stderr)
	}
}

func mustRead(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReplayRedisAuthAndCluster: --redis reaches the gateway's store as
// its redis block does: a server with a password, the password read from
// the environment variable --redis-password-env names (refused when that
// is unset or not a name, without echoing it), and a 3-master Cluster
// from several addresses. A --redis-* flag without --redis is an error.
func TestReplayRedisAuthAndCluster(t *testing.T) {
	const password = "s3cret-Pa55"
	srv, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := srv.Do("CONFIG", "SET", "requirepass", password); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REDISCLI_AUTH", password) // for srv.Do's redis-cli
	dir := t.TempDir()
	events := gatewayArchive(t, dir)
	up := newRecorder(t, 200)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--redis", srv.Addr}, "NOAUTH"},
		{[]string{"--redis", srv.Addr, "--redis-password-env", "WEBHOOK_TEST_UNSET"}, "no environment variable of that name is set"},
		{[]string{"--redis", srv.Addr, "--redis-password-env", password}, "give the name of an environment variable"},
		{[]string{"--redis-password-env", "WEBHOOK_TEST_REDIS_PW", "--redis-db", "1"}, "--redis-password-env, --redis-db: needs --redis"},
		{[]string{"--redis", srv.Addr + "," + srv.Addr, "--redis-master-name", "m", "--redis-cluster"}, "--redis-cluster and --redis-master-name exclude each other"},
		{[]string{"--redis", srv.Addr, "--redis-tls-ca", "/etc/ssl/certs/ca-certificates.crt"}, "--redis-tls-ca and --redis-tls-server-name need --redis-tls"},
		{[]string{"--redis", "127.0.0.1:6379?password=" + password}, "--redis 1: want host:port, not a URL"},
	} {
		out, stderr, code := replay(t, dir, append([]string{"--to", up.URL}, tc.args...)...)
		if code != 1 || !strings.Contains(stderr, tc.want) || len(up.ids()) != 0 {
			t.Errorf("%v: exit %d, sent %v, stderr %q, want exit 1 and %q\n%s", tc.args, code, up.ids(), stderr, tc.want, out)
		}
		if strings.Contains(stderr, password) {
			t.Errorf("%v: stderr holds the password: %s", tc.args, stderr)
		}
	}

	t.Setenv("WEBHOOK_TEST_REDIS_PW", password)
	out, stderr, code := replay(t, dir, "--to", up.URL, "--redis", srv.Addr, "--redis-password-env", "WEBHOOK_TEST_REDIS_PW", "--key-prefix", "gw1:")
	if code != 0 || !strings.Contains(out, "sent 2, accepted 2") {
		t.Fatalf("with the password: exit %d\n%s%s", code, out, stderr)
	}
	for _, id := range []string{events["failed"].id, events["killed"].id} {
		if v, err := srv.Do("GET", "gw1:wazera:"+id); v != "done" {
			t.Errorf("%s: committed in the password-protected store: GET = %q %v", id, v, err)
		}
	}

	os.Unsetenv("REDISCLI_AUTH") // the Cluster has no password (t.Setenv restores it after the test)
	cluster, err := redistest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	dir = t.TempDir()
	events = gatewayArchive(t, dir)
	up.reset()
	out, stderr, code = replay(t, dir, "--to", up.URL, "--redis", strings.Join(cluster.Addrs(), ","), "--key-prefix", "gw2:")
	if code != 0 || !strings.Contains(out, "sent 2, accepted 2") {
		t.Fatalf("Cluster: exit %d\n%s%s", code, out, stderr)
	}
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs()})
	defer client.Close()
	for _, id := range []string{events["failed"].id, events["killed"].id} {
		if v, err := client.Get(context.Background(), "gw2:wazera:"+id).Result(); v != "done" {
			t.Errorf("%s: committed in the Cluster: GET = %q %v", id, v, err)
		}
	}
}
