package webhookcmd_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestReplayDoesNotFollowRedirects: an app that answers a redirect (an
// http to https rule in front of it, a moved path) has not accepted the
// event. Replay must not follow it: Go's client would turn the POST into
// a GET without the body, and count the page it lands on as the event
// accepted, marking it delivered for good. As the gateway's reverse_proxy
// does, it takes the 3xx as the answer: failed, exit 1, replayed again
// next time.
func TestReplayDoesNotFollowRedirects(t *testing.T) {
	dir := t.TempDir()
	gatewayArchive(t, dir) // two events never accepted
	var landed atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		landed.Add(1)
		w.Write([]byte("<html>welcome</html>"))
	}))
	t.Cleanup(target.Close)
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/moved", status)
		}))
		out, stderr, code := replay(t, dir, "--to", app.URL)
		app.Close()
		if code != 1 || !strings.Contains(out, "selected 2, sent 2, accepted 0, failed 2") || !strings.Contains(stderr, "answered "+strconv.Itoa(status)) {
			t.Errorf("%d: exit %d\n%s%s", status, code, out, stderr)
		}
		if landed.Load() != 0 {
			t.Errorf("%d: replay followed the redirect %d times", status, landed.Load())
		}
	}
	// still never accepted: the next replay sends both again
	up := newRecorder(t, 200)
	if out, stderr, code := replay(t, dir, "--to", up.URL); code != 0 || !strings.Contains(out, "selected 2, sent 2, accepted 2") {
		t.Errorf("after the redirects: exit %d\n%s%s", code, out, stderr)
	}
}

// TestReplayRateMustBeANumber: --rate NaN or Inf is refused before
// anything is sent (NaN passed the old "<= 0" check and sent at full speed).
func TestReplayRateMustBeANumber(t *testing.T) {
	dir := t.TempDir()
	gatewayArchive(t, dir)
	up := newRecorder(t, 200)
	for _, rate := range []string{"NaN", "Inf", "+Inf", "-1", "0"} {
		_, stderr, code := caddy(t, nil, "webhook", "replay", "--archive", dir, "--to", up.URL, "--rate", rate)
		if code == 0 || !strings.Contains(stderr, "--rate must be a positive number") {
			t.Errorf("--rate %s: exit %d, stderr %q", rate, code, stderr)
		}
	}
	if got := up.ids(); len(got) != 0 {
		t.Errorf("sent %v with a bad --rate", got)
	}
}
