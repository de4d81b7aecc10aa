package webhookcmd_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wagate/caddy-webhook/archive"
	"github.com/wagate/caddy-webhook/verify"
)

// TestArchiveLs: one line a request, with its verdict or reject reason,
// event, type and the upstream's last answer; the flags filter.
func TestArchiveLs(t *testing.T) {
	dir := t.TempDir()
	events := gatewayArchive(t, dir)
	out, stderr, code := caddy(t, nil, "webhook", "archive", "ls", "--archive", dir)
	if code != 0 || stderr != "" {
		t.Fatalf("ls: exit %d %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "RECORD") {
		t.Fatalf("want a header and 6 requests:\n%s", out)
	}
	line := func(ref string) []string {
		for _, l := range lines {
			if f := strings.Fields(l); f[0] == ref {
				return f
			}
		}
		t.Fatalf("no line for %s:\n%s", ref, out)
		return nil
	}
	for name, want := range map[string][]string{
		"failed":   {"wazera", "verified", events["failed"].id, "message.received", "500"},
		"killed":   {"wazera", "verified", events["killed"].id, "message.received", "-"},
		"retried":  {"wazera", "verified", events["retried"].id, "message.received", "200"},
		"rejected": {"wazera", "rejected:no_match", "-", "-", "-"},
	} {
		if got := line(events[name].ref.ID)[2:]; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	count := func(args ...string) int {
		t.Helper()
		out, stderr, code := caddy(t, nil, append([]string{"webhook", "archive", "ls", "--archive", dir}, args...)...)
		if code != 0 {
			t.Fatalf("ls %v: %d %s", args, code, stderr)
		}
		return strings.Count(out, "\n") - 1
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--verdict", "verified"}, 5},
		{[]string{"--verdict", "rejected"}, 1},
		{[]string{"--verdict", "no_match"}, 1},
		{[]string{"--verdict", "rejected:no_match"}, 1}, // as the VERDICT column shows it
		{[]string{"--verdict", "rejected:stale"}, 0},
		{[]string{"--verdict", "duplicate"}, 0},
		{[]string{"--provider", "wazera"}, 6},
		{[]string{"--provider", "zavu"}, 0},
		{[]string{"--since", "150m"}, 1},
		{[]string{"--since", "1d"}, 6},
	} {
		if got := count(tc.args...); got != tc.want {
			t.Errorf("ls %v: %d lines, want %d", tc.args, got, tc.want)
		}
	}
	if _, stderr, code := caddy(t, nil, "webhook", "archive", "ls"); code == 0 || !strings.Contains(stderr, "--archive is required") {
		t.Errorf("no --archive: %d %s", code, stderr)
	}
}

// TestArchiveShowExplainsReject: show prints the archived request as raw
// HTTP that check reads: with the secret the gateway should have had, it
// verifies; with the wrong one, check says why not. Credentials stay
// redacted.
func TestArchiveShowExplainsReject(t *testing.T) {
	dir := t.TempDir()
	events := gatewayArchive(t, dir)
	raw, stderr, code := caddy(t, nil, "webhook", "archive", "show", "--archive", dir, events["rejected"].ref.ID)
	if code != 0 || stderr != "" {
		t.Fatalf("show: exit %d %s", code, stderr)
	}
	if !strings.HasPrefix(raw, "POST /wazera HTTP/1.1\r\nHost: 127.0.0.1\r\n") || !strings.HasSuffix(raw, "\r\n\r\n"+string(events["rejected"].body)) {
		t.Errorf("not the raw request:\n%s", raw)
	}
	out, stderr, code := caddy(t, []byte(raw), "webhook", "check", "--provider", "wazera", "--secret", secrets[verify.Wazera], "--file", "-")
	if code != 0 || !strings.HasPrefix(out, "verified: wazera event ") {
		t.Errorf("check with the right secret: exit %d\n%s%s", code, out, stderr)
	}
	out, _, code = caddy(t, []byte(raw), "webhook", "check", "--provider", "wazera", "--secret", "the-wrong-one", "--file", "-")
	if code != 1 || !strings.Contains(out, "the signature does not match") {
		t.Errorf("check with the gateway's wrong secret: exit %d\n%s", code, out)
	}

	// a verified record's headers as received: signature kept, credentials not
	raw, _, _ = caddy(t, nil, "webhook", "archive", "show", "--archive", dir, events["failed"].ref.ID)
	if !strings.Contains(raw, "Authorization: [redacted]\r\n") || strings.Contains(raw, "not-for-the-archive") ||
		!strings.Contains(raw, "X-Wazera-Signature: "+events["failed"].header.Get("X-Wazera-Signature")+"\r\n") {
		t.Errorf("verified record:\n%s", raw)
	}
	if out, _, code := caddy(t, []byte(raw), "webhook", "check", "--provider", "wazera", "--secret", secrets[verify.Wazera], "--file", "-"); code != 0 {
		t.Errorf("check of a verified record: %d %s", code, out)
	}

	// an outcome record's id shows its request; an unknown id is an error
	var outcome string
	(&archive.Reader{Dir: dir}).Scan(archive.Filter{}, func(r *archive.Record) error {
		if r.Kind == archive.KindOutcome && r.Ref == events["failed"].ref.ID {
			outcome = r.ID
		}
		return nil
	})
	if got, _, code := caddy(t, nil, "webhook", "archive", "show", "--archive", dir, outcome); code != 0 || got != raw {
		t.Errorf("show of the outcome %q: exit %d\n%s", outcome, code, got)
	}
	if _, stderr, code := caddy(t, nil, "webhook", "archive", "show", "--archive", dir, "ffffffffffff-1"); code != 1 || !strings.Contains(stderr, "no record ffffffffffff-1") {
		t.Errorf("unknown record: %d %s", code, stderr)
	}
	if _, stderr, code := caddy(t, nil, "webhook", "archive", "show", "--archive", dir); code != 1 || !strings.Contains(stderr, "one record id") {
		t.Errorf("no record: %d %s", code, stderr)
	}

	// a corrupt line is warned about with its file and line, and ls goes on
	files, _ := filepath.Glob(filepath.Join(dir, "wazera", "*.jsonl"))
	f, _ := os.OpenFile(files[0], os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("{\"kind\":\"request\",\"verdict\":\x01}\n")
	f.Close()
	n := strings.Count(mustRead(t, files[0]), "\n")
	out, stderr, code = caddy(t, nil, "webhook", "archive", "ls", "--archive", dir)
	if code != 0 || strings.Count(out, "\n") != 7 || !strings.Contains(stderr, files[0]+":"+strconv.Itoa(n)+": corrupt record") {
		t.Errorf("ls over a corrupt line: exit %d\n%s%s", code, out, stderr)
	}
	if strings.Count(stderr, "warning:") != 1 {
		t.Errorf("one warning per bad line:\n%s", stderr)
	}
}

// TestArchiveLsRefusedVerdict: a verified event's record is written before
// its claim; when the claim answers it as a duplicate or in flight, the
// outcome's verdict is what ls shows and filters on.
func TestArchiveLsRefusedVerdict(t *testing.T) {
	dir := t.TempDir()
	w, err := archive.Open(archive.Options{Dir: dir, Provider: verify.Wazera, CleanEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]archive.Ref{}
	for _, tc := range []struct{ id, verdict string }{{"evt_a", ""}, {"evt_a", archive.Duplicate}, {"evt_b", archive.InFlight}} {
		ref, err := w.WriteRequest(&archive.Request{Verdict: archive.Verified, EventID: tc.id, EventType: "message.received", Secret: 0})
		if err != nil {
			t.Fatal(err)
		}
		o := &archive.Outcome{Verdict: tc.verdict, Status: 200, Settled: archive.Committed}
		switch tc.verdict {
		case archive.Duplicate:
			o.Settled = archive.Done
		case archive.InFlight:
			o.Status, o.Settled = 409, archive.None
		}
		if err := w.WriteOutcome(ref, o); err != nil {
			t.Fatal(err)
		}
		refs[tc.id+tc.verdict] = ref
	}
	w.Close()
	ls := func(args ...string) string {
		t.Helper()
		out, stderr, code := caddy(t, nil, append([]string{"webhook", "archive", "ls", "--archive", dir}, args...)...)
		if code != 0 {
			t.Fatalf("ls %v: %d %s", args, code, stderr)
		}
		return out
	}
	out := ls()
	for key, want := range map[string]string{"evt_a": "verified evt_a message.received 200", "evt_aduplicate": "duplicate evt_a message.received done", "evt_bin_flight": "in_flight evt_b message.received 409"} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 2 && f[0] == refs[key].ID {
				found = strings.Join(f[3:], " ") == want
			}
		}
		if !found {
			t.Errorf("%s: want %q in\n%s", key, want, out)
		}
	}
	for verdict, want := range map[string]int{"verified": 1, "duplicate": 1, "in_flight": 1} {
		if got := strings.Count(ls("--verdict", verdict), "\n") - 1; got != want {
			t.Errorf("ls --verdict %s: %d lines, want %d", verdict, got, want)
		}
	}
}
