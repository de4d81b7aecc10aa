package webhookcmd_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wagate/caddy-webhook/verify"
)

const unverifiedWarning = "without a Webhook-Event-Id header: the event may have gone to a route without webhook_verify"

// TestSendWarnsWhenNotVerified: a 2xx answer that did not pass
// webhook_verify (no Webhook-Event-Id on the answer) gets one warning line
// on stderr naming the URL, and the exit status stays 0; answers that did
// pass it, forwarded or duplicate, and non-2xx answers get none.
func TestSendWarnsWhenNotVerified(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, "accepted")
	}))
	t.Cleanup(up.Close)
	p := verify.Wazera
	// /wazera verifies; /other answers 200 without verifying; any other
	// path is unmatched, which Caddy answers with an empty 200.
	base := serve(t, fmt.Sprintf("\thandle /%s {\n\t\twebhook_verify %s {\n\t\t\tsecret %s\n\t\t}\n\t\treverse_proxy %s\n\t}\n\thandle /other {\n\t\treverse_proxy %s\n\t}\n",
		p, p, secrets[p], up.URL, up.URL))
	send := func(url string, extra ...string) (string, string, int) {
		return caddy(t, nil, append([]string{"webhook", "send", "--provider", p, "--secret", secrets[p], "--url", url}, extra...)...)
	}

	for _, path := range []string{"/wazer", "/wazera/", "/", "/other"} {
		url := base + path
		out, stderr, code := send(url)
		if code != 0 || !strings.Contains(out, "200 OK") {
			t.Errorf("%s: exit %d, want 0 after a 200\n%s%s", path, code, out, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if len(lines) != 1 || !strings.Contains(stderr, unverifiedWarning) || !strings.Contains(stderr, url+" ") {
			t.Errorf("%s: stderr %q, want one warning line naming %s", path, stderr, url)
		}
	}

	// through the verifier: forwarded, then answered as a duplicate
	out, stderr, code := send(base+"/"+p, "--repeat", "2")
	if code != 0 || !strings.Contains(out, "accepted") || !strings.Contains(out, `"status":"duplicate"`) {
		t.Errorf("/%s --repeat 2: exit %d\n%s%s", p, code, out, stderr)
	}
	if stderr != "" {
		t.Errorf("/%s: a verified answer warned: %q", p, stderr)
	}
	// a reject is not a success: nothing to warn about
	out, stderr, code = send(base+"/"+p, "--tamper")
	if code != 0 || !strings.Contains(out, "401") || stderr != "" {
		t.Errorf("/%s --tamper: exit %d, stderr %q\n%s", p, code, stderr, out)
	}
}

// TestSendWarningFollowsTheHeader: the warning depends on the header
// alone, on every 2xx status (not only 200), for each answer of --repeat.
func TestSendWarningFollowsTheHeader(t *testing.T) {
	for _, tt := range []struct {
		status int
		id     string
		warn   bool
	}{
		{http.StatusOK, "", true},
		{http.StatusAccepted, "", true},
		{http.StatusNoContent, "", true},
		{http.StatusOK, "evt_1", false},
		{http.StatusAccepted, "evt_1", false},
		{http.StatusNotFound, "", false},
		{http.StatusInternalServerError, "", false},
	} {
		t.Run(fmt.Sprintf("%d %q", tt.status, tt.id), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if tt.id != "" {
					w.Header().Set("Webhook-Event-Id", tt.id)
				}
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			p := verify.Zavu
			_, stderr, code := caddy(t, nil, "webhook", "send", "--provider", p, "--secret", secrets[p], "--url", srv.URL+"/zavu", "--repeat", "2")
			if code != 0 {
				t.Errorf("exit %d: %s", code, stderr)
			}
			want := 0
			if tt.warn {
				want = 2
			}
			if got := strings.Count(stderr, unverifiedWarning); got != want || strings.Count(stderr, "\n") != want {
				t.Errorf("%d warnings, want %d: %q", got, want, stderr)
			}
		})
	}
}
