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
