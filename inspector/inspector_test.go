package inspector

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/archive"
)

// A test clock: the archive is written at base + i seconds.
var base = time.Date(2026, 5, 1, 13, 0, 0, 0, time.UTC)

const secretText = "wazera-test-secret-never-shown"

// fixture writes an archive: for each of n events of provider wazera, a
// verified request and its outcome (every third one 500), then one
// rejected request, one duplicate, and zavu's verified events.
func fixture(t *testing.T) (dir string, now func() time.Time) {
	t.Helper()
	dir = t.TempDir()
	clock := base
	now = func() time.Time { return clock }
	open := func(provider string) *archive.Writer {
		w, err := archive.Open(archive.Options{Dir: dir, Provider: provider, Instance: "test-" + provider, Now: now,
			Limits: archive.Limits{Rejected: archive.RejectedBody}, CleanEvery: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		return w
	}
	wz, zv := open("wazera"), open("zavu")
	body := `{"event":"message.received","id":"%s","data":{"from":"+4915112345678","text":"meet me at 5, Anna","profile":{"name":"Anna Schmidt"}}}`
	for i := range 12 {
		clock = base.Add(time.Duration(i) * time.Second)
		id := fmt.Sprintf("evt_%02d", i)
		ref, err := wz.WriteRequest(&archive.Request{
			Verdict: archive.Verified, EventID: id, EventType: "message.received", Secret: 1, Secrets: 2,
			Timestamp: clock.Add(-3 * time.Second), Window: 30 * time.Hour,
			Method: "POST", Path: "/wazera", Header: http.Header{"X-Wazera-Signature": {"sha256=" + strings.Repeat("ab", 32)}, "Authorization": {"Bearer " + secretText}},
			Body: []byte(fmt.Sprintf(body, id)), Format: "raw",
		})
		if err != nil {
			t.Fatal(err)
		}
		status := 200
		if i%3 == 2 {
			status = 500
		}
		clock = clock.Add(20 * time.Millisecond)
		if err := wz.WriteOutcome(ref, &archive.Outcome{Status: status, Duration: 20 * time.Millisecond, Settled: archive.Committed}); err != nil {
			t.Fatal(err)
		}
	}
	clock = base.Add(30 * time.Second)
	if _, err := wz.WriteRequest(&archive.Request{Verdict: archive.Rejected, Reason: "no_match", Secret: -1, Secrets: 2,
		Method: "POST", Path: "/wazera", Header: http.Header{"X-Wazera-Signature": {"sha256=" + strings.Repeat("cd", 32)}},
		Body: []byte(fmt.Sprintf(body, "evt_tampered"))}); err != nil {
		t.Fatal(err)
	}
	clock = base.Add(31 * time.Second)
	if _, err := wz.WriteRequest(&archive.Request{Verdict: archive.Duplicate, EventID: "evt_00", EventType: "message.received", Secret: 0, Secrets: 2,
		Body: []byte(fmt.Sprintf(body, "evt_00"))}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		clock = base.Add(time.Duration(40+i) * time.Second)
		if _, err := zv.WriteRequest(&archive.Request{Verdict: archive.Verified, EventID: fmt.Sprintf("zv_%d", i), Secret: 0, Secrets: 1, Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	clock = base.Add(5 * time.Minute)
	return dir, now
}

func get(t *testing.T, h http.Handler, target string, out any) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://localhost"+target, nil)
	r.RemoteAddr = "127.0.0.1:40000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if strings.Contains(w.Body.String(), secretText) {
		t.Fatalf("GET %s: the answer holds a credential: %s", target, w.Body)
	}
	if out != nil {
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
		}
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("GET %s: %v: %s", target, err, w.Body)
		}
	}
	return w
}

func ids(p *Page) []string {
	var out []string
	for _, r := range p.Events {
		out = append(out, r.EventID)
	}
	return out
}

func TestListFilters(t *testing.T) {
	dir, now := fixture(t)
	h := New(Options{Dir: dir, Now: now})
	for _, tc := range []struct {
		query string
		want  string // event ids, newest first
	}{
		{"", "zv_2 zv_1 zv_0 evt_00  evt_11 evt_10 evt_09 evt_08 evt_07 evt_06 evt_05 evt_04 evt_03 evt_02 evt_01 evt_00"},
		{"?provider=zavu", "zv_2 zv_1 zv_0"},
		{"?provider=wazera&verdict=rejected", ""}, // the reject has no event id
		{"?verdict=duplicate", "evt_00"},
		{"?verdict=failed", "evt_11 evt_08 evt_05 evt_02"},
		{"?provider=wazera&verdict=verified", "evt_10 evt_09 evt_07 evt_06 evt_04 evt_03 evt_01 evt_00"},
		{"?q=EVT_1", "evt_11 evt_10"},
		{"?q=nothing", ""},
		{"?since=" + base.Add(40*time.Second).Format(time.RFC3339), "zv_2 zv_1 zv_0"},
		{"?since=4m30s", "zv_2 zv_1 zv_0 evt_00 "},
		{"?verdict=store_error", ""},
		{"?since=4m", ""},
	} {
		var p Page
		get(t, h, "/_webhooks/api/events"+tc.query, &p)
		if got := strings.Join(ids(&p), " "); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.query, got, tc.want)
		}
	}
	var p Page
	get(t, h, "/_webhooks/api/events?verdict=rejected", &p)
	if len(p.Events) != 1 || p.Events[0].Reason != "no_match" || p.Events[0].State != StateRejected {
		t.Fatalf("rejected: %+v", p.Events)
	}
	get(t, h, "/_webhooks/api/events?verdict=failed&limit=1", &p)
	if r := p.Events[0]; r.Status != 500 || r.DurationMS == nil || *r.DurationMS != 20 {
		t.Fatalf("failed row: %+v", r)
	}
	for _, bad := range []string{"?verdict=maybe", "?limit=0", "?limit=x", "?since=yesterday", "?cursor=zz", "?provider=../etc"} {
		if w := get(t, h, "/_webhooks/api/events"+bad, nil); w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, w.Code)
		}
	}
}

func TestListPaging(t *testing.T) {
	dir, now := fixture(t)
	h := New(Options{Dir: dir, Now: now})
	var all Page
	get(t, h, "/api/events?limit=500", &all)
	if all.Cursor != "" || len(all.Events) != 17 {
		t.Fatalf("one page of all: %d rows, cursor %q", len(all.Events), all.Cursor)
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		var p Page
		get(t, h, "/api/events?limit=5&cursor="+cursor, &p)
		if len(p.Events) > 5 {
			t.Fatalf("page of %d rows, limit 5", len(p.Events))
		}
		for _, r := range p.Events {
			got = append(got, r.ID)
		}
		if cursor = p.Cursor; cursor == "" {
			break
		}
	}
	var want []string
	for _, r := range all.Events {
		want = append(want, r.ID)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("pages:\n got %v\nwant %v", got, want)
	}
	for i := 1; i < len(all.Events); i++ {
		if all.Events[i].Time.After(all.Events[i-1].Time) {
			t.Fatalf("not newest first at %d", i)
		}
	}
}

func findRow(t *testing.T, h http.Handler, query string) *Row {
	t.Helper()
	var p Page
	get(t, h, "/api/events"+query, &p)
	if len(p.Events) == 0 {
		t.Fatalf("%s: no row", query)
	}
	return p.Events[0]
}

func TestDetailMasking(t *testing.T) {
	dir, now := fixture(t)
	for _, show := range []bool{false, true} {
		t.Run(fmt.Sprint("show_payloads=", show), func(t *testing.T) {
			h := New(Options{Dir: dir, Now: now, ShowPayloads: show})
			row := findRow(t, h, "?verdict=rejected")
			var d Detail
			get(t, h, "/_webhooks/api/events/"+row.ID, &d)
			plain := []string{"+4915112345678", "meet me at 5, Anna", "Anna Schmidt"}
			for _, s := range plain {
				if strings.Contains(d.Payload, s) != show {
					t.Errorf("payload holds %q: %v, want %v:\n%s", s, !show, show, d.Payload)
				}
			}
			if d.PayloadMasked == show {
				t.Errorf("payload_masked %v", d.PayloadMasked)
			}
			if !show && !strings.Contains(d.Payload, `"+49•••••••••78"`) {
				t.Errorf("masked phone not kept in shape:\n%s", d.Payload)
			}
			if !strings.Contains(d.Payload, "\n  ") || !strings.Contains(d.Payload, "evt_tampered") {
				t.Errorf("payload not pretty-printed JSON with its id:\n%s", d.Payload)
			}
			g := d.Diagnosis
			if g.Reason != "no_match" || g.Secret != "none of 2" || g.BodySize == 0 || len(g.BodySHA256) != 64 {
				t.Errorf("diagnosis: %+v", g)
			}
			if g.SignatureHeader != "X-Wazera-Signature" || g.Signature != "sha256=cdcdcdcd…cdcd" {
				t.Errorf("signature: %q %q", g.SignatureHeader, g.Signature)
			}
			if v := d.Headers["X-Wazera-Signature"]; len(v) != 1 || strings.Contains(v[0], strings.Repeat("cd", 32)) {
				t.Errorf("signature header not shortened: %v", v)
			}
			if d.Outcome != nil {
				t.Errorf("a reject has no outcome: %+v", d.Outcome)
			}
			if len(d.Commands) != 2 || !strings.Contains(d.Commands[1], "caddy webhook check --provider wazera") {
				t.Errorf("commands: %q", d.Commands)
			}
		})
	}
}

func TestDetailVerified(t *testing.T) {
	dir, now := fixture(t)
	h := New(Options{Dir: dir, Now: now})
	row := findRow(t, h, "?q=evt_02&provider=wazera&verdict=failed")
	var d Detail
	get(t, h, "/api/events/"+row.ID, &d)
	if d.Outcome == nil || d.Outcome.Status != 500 || d.State != StateFailed {
		t.Fatalf("outcome: %+v state %s", d.Outcome, d.State)
	}
	g := d.Diagnosis
	if g.Secret != "secret 2 of 2" || g.SkewSeconds == nil || *g.SkewSeconds != 3 || g.WindowSeconds != 30*3600 {
		t.Fatalf("diagnosis: %+v", g)
	}
	if v := d.Headers["Authorization"]; len(v) != 1 || v[0] != archive.Redacted {
		t.Fatalf("authorization: %v", v)
	}
	want := "caddy webhook replay --archive " + dir + " --to URL --provider wazera --event-id evt_02"
	if len(d.Commands) == 0 || d.Commands[0] != want {
		t.Fatalf("commands: %q, want %q first", d.Commands, want)
	}
	// an outcome's id shows its request
	if w := get(t, h, "/api/events/nope", nil); w.Code != http.StatusNotFound {
		t.Fatalf("unknown record: %d", w.Code)
	}
}

func TestStats(t *testing.T) {
	dir, now := fixture(t)
	h := New(Options{Dir: dir, Now: now})
	var st Stats
	get(t, h, "/api/stats", &st)
	want := MinuteCounts{Verified: 8 + 3, Failed: 4, Rejected: 1, Duplicate: 1}
	if st.Total != want {
		t.Fatalf("total %+v, want %+v", st.Total, want)
	}
	if len(st.Minutes) != 60 || st.Minutes[len(st.Minutes)-1].Time.After(now()) {
		t.Fatalf("minutes: %d, last %v", len(st.Minutes), st.Minutes[len(st.Minutes)-1].Time)
	}
	var sum int
	for _, m := range st.Minutes {
		sum += m.Verified + m.Failed + m.Rejected + m.Duplicate
	}
	if sum != 17 || strings.Join(st.Providers, ",") != "wazera,zavu" {
		t.Fatalf("minutes sum %d, providers %v", sum, st.Providers)
	}
}

func TestLoopbackOnly(t *testing.T) {
	dir, now := fixture(t)
	for _, tc := range []struct {
		remote string
		public bool
		want   int
	}{
		{"127.0.0.1:5000", false, 200},
		{"[::1]:5000", false, 200},
		{"203.0.113.7:5000", false, 403},
		{"10.0.0.2:5000", false, 403},
		{"203.0.113.7:5000", true, 200},
	} {
		h := New(Options{Dir: dir, Now: now, Public: tc.public})
		for _, path := range []string{"/_webhooks/", "/_webhooks/api/events", "/_webhooks/app.js"} {
			r := httptest.NewRequest(http.MethodGet, "http://gw"+path, nil)
			r.RemoteAddr = tc.remote
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Errorf("%s from %s, public %v: %d, want %d", path, tc.remote, tc.public, w.Code, tc.want)
			}
			if tc.want == 403 && strings.Contains(w.Body.String(), "evt_") {
				t.Errorf("a refusal shows events")
			}
		}
	}
}

func TestReadOnlyAndPage(t *testing.T) {
	dir, now := fixture(t)
	h := New(Options{Dir: dir, Now: now})
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		r := httptest.NewRequest(m, "http://gw/_webhooks/api/events", strings.NewReader("{}"))
		r.RemoteAddr = "127.0.0.1:1"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
	w := get(t, h, "/_webhooks/", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `<script type="module" src="app.js">`) {
		t.Fatalf("page: %d %.200s", w.Code, w.Body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("csp %q", csp)
	}
	if w := get(t, h, "/_webhooks", nil); w.Code != http.StatusFound || w.Header().Get("Location") != "/_webhooks/" {
		t.Fatalf("no trailing slash: %d %q", w.Code, w.Header().Get("Location"))
	}
	if w := get(t, h, "/_webhooks/app.js", nil); w.Code != 200 || !strings.Contains(w.Header().Get("Content-Type"), "javascript") {
		t.Fatalf("app.js: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if w := get(t, h, "/_webhooks/api/nothing", nil); w.Code != http.StatusNotFound {
		t.Fatalf("unknown endpoint: %d", w.Code)
	}
	for _, f := range []string{"index.html", "app.js", "style.css"} {
		b, _ := assets.ReadFile("assets/" + f)
		b = []byte(strings.ReplaceAll(string(b), `"http://www.w3.org/2000/svg"`, "")) // a namespace, not a request
		if strings.Contains(string(b), "http://") || strings.Contains(string(b), "https://") || strings.Contains(string(b), "//cdn") {
			t.Errorf("%s names another origin", f)
		}
		if f == "index.html" && (strings.Contains(string(b), "<script>") || strings.Contains(string(b), "style=") || strings.Contains(string(b), "onclick")) {
			t.Errorf("index.html has inline script or style")
		}
	}
}

func TestStream(t *testing.T) {
	dir := t.TempDir()
	w, err := archive.Open(archive.Options{Dir: dir, Provider: "wazera", Instance: "s", CleanEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteRequest(&archive.Request{Verdict: archive.Verified, EventID: "before", Secret: 0}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{Dir: dir, Poll: 20 * time.Millisecond}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/x/api/stream", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", res.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(res.Body)
	if _, err := br.ReadString('\n'); err != nil { // the retry line: the stream is open
		t.Fatal(err)
	}
	ref, err := w.WriteRequest(&archive.Request{Verdict: archive.Verified, EventID: "after", Secret: 0, Header: http.Header{"Authorization": {secretText}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteOutcome(ref, &archive.Outcome{Status: 202, Duration: time.Millisecond, Settled: archive.None}); err != nil {
		t.Fatal(err)
	}
	var events []string
	for len(events) < 2 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", events, err)
		}
		if strings.Contains(line, secretText) || strings.Contains(line, `"before"`) {
			t.Fatalf("stream sent %q", line)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			events = append(events, strings.TrimSpace(data))
		}
	}
	var row Row
	var out OutcomeEvent
	if json.Unmarshal([]byte(events[0]), &row) != nil || row.EventID != "after" || row.State != StateVerified {
		t.Fatalf("request event %s", events[0])
	}
	if json.Unmarshal([]byte(events[1]), &out) != nil || out.Ref != row.ID || out.Status != 202 {
		t.Fatalf("outcome event %s", events[1])
	}
	cancel()
	io.Copy(io.Discard, res.Body)
}

func TestMask(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"name":"Anna Maria"}`, `{"name":"A••• M••••"}`},
		{`{"contact_name":"Bo"}`, `{"contact_name":"B•"}`},
		{`{"template_name":"welcome"}`, `{"template_name":"welcome"}`},
		{`{"text":"hello"}`, `{"text":"[text: 5 characters]"}`},
		{`{"msisdn":4915112345678}`, `{"msisdn":"491••••••••78"}`},
		{`{"x":"+1 (555) 010-9999"}`, `{"x":"+1 ••••••••••••99"}`},
		{`{"status":"delivered","count":12}`, `{"status":"delivered","count":12}`},
		{`{"list":[{"body":"hi"},"4915112345678@s.whatsapp.net"]}`, `{"list":[{"body":"[text: 2 characters]"},"491•••••••••••••••••••••••et"]}`},
	} {
		got, masked := payload([]byte(tc.in), false, false)
		var a, b any
		json.Unmarshal([]byte(got), &a)
		json.Unmarshal([]byte(tc.want), &b)
		if !masked || fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	if got, masked := payload([]byte("name=Anna&phone=4915112345678"), false, false); !masked || strings.Contains(got, "Anna") {
		t.Errorf("form body: %q", got)
	}
}

// TestRefusedOutcome: a verified event's record is written before its
// claim; an outcome with a verdict (the claim found it a duplicate, in
// flight, or the store failed) sets the row's verdict and state, in the
// list and in the stream's event.
func TestRefusedOutcome(t *testing.T) {
	for _, tc := range []struct{ verdict, state string }{
		{archive.Duplicate, StateDuplicate}, {archive.InFlight, StateInFlight}, {archive.StoreError, StateFailed},
	} {
		row := rowOf(&archive.Record{Kind: archive.KindRequest, ID: "r1", Verdict: archive.Verified, EventID: "evt"})
		o := &archive.Record{Kind: archive.KindOutcome, ID: "r2", Ref: "r1", Verdict: tc.verdict, Status: 409, Settled: archive.None}
		row.settle(o)
		if row.Verdict != tc.verdict || row.State != tc.state {
			t.Errorf("%s: row verdict %q state %q, want %q %q", tc.verdict, row.Verdict, row.State, tc.verdict, tc.state)
		}
		if e := outcomeEvent(o); e.Verdict != tc.verdict || e.State != tc.state {
			t.Errorf("%s: stream event %+v", tc.verdict, e)
		}
	}
	// a forwarded event's outcome leaves the verdict alone
	row := rowOf(&archive.Record{Kind: archive.KindRequest, ID: "r1", Verdict: archive.Verified, EventID: "evt"})
	row.settle(&archive.Record{Kind: archive.KindOutcome, Ref: "r1", Status: 500, Settled: archive.Released})
	if row.Verdict != archive.Verified || row.State != StateFailed {
		t.Errorf("forwarded, 500: %q %q", row.Verdict, row.State)
	}
	if e := outcomeEvent(&archive.Record{Kind: archive.KindOutcome, Ref: "r1", Status: 200}); e.Verdict != "" || e.State != "" {
		t.Errorf("forwarded outcome event: %+v", e)
	}
}
