package webhookcmd_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/archive"
	"github.com/wagate/caddy-webhook/internal/testutil"
	"github.com/wagate/caddy-webhook/verify"
	"github.com/wagate/caddy-webhook/verify/samples"
)

// archiveGateway runs `caddy run` with webhook_verify wazera archiving to
// dir in front of upstream, and returns its URL and process.
func archiveGateway(t *testing.T, dir, upstream string) (string, *exec.Cmd) {
	t.Helper()
	port := testutil.FreePort()
	cmd := runCaddy(t, port, fmt.Sprintf(`{
	admin off
}
http://127.0.0.1:%d {
	handle /wazera {
		webhook_verify wazera {
			secret %s
			archive %s
		}
		reverse_proxy %s
	}
}
`, port, secrets[verify.Wazera], dir, upstream))
	return fmt.Sprintf("http://127.0.0.1:%d/wazera", port), cmd
}

// signedEvent returns a signed wazera request body and headers for id.
func signedEvent(t *testing.T, id string, at time.Time) ([]byte, http.Header) {
	t.Helper()
	signer, _ := verify.New(verify.Wazera, verify.Options{Secrets: []string{secrets[verify.Wazera]}})
	body, err := samples.Body(verify.Wazera, "message.received", samples.Values{ID: id, Time: at})
	if err != nil {
		t.Fatal(err)
	}
	h, err := signer.Sign(body, verify.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.Set("Content-Type", "application/json")
	return body, h
}

func post(url string, body []byte, h http.Header) (int, error) {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header = h.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestReplayAfterOutage: through a real gateway and app. The app answers
// 500 to every event for longer than the provider retries; one event is
// delivered by a provider retry once it is back. replay delivers exactly
// the others, each once, and a second replay sends nothing.
func TestReplayAfterOutage(t *testing.T) {
	dir := t.TempDir()
	up := newRecorder(t, 500)
	url, _ := archiveGateway(t, dir, up.URL)
	at := time.Now()
	var ids []string
	for i := range 5 {
		body, h := signedEvent(t, fmt.Sprint("outage-", i), at)
		if status, err := post(url, body, h); err != nil || status != 500 {
			t.Fatalf("event %d during the outage: %d %v", i, status, err)
		}
		ids = append(ids, up.ids()[i])
	}
	up.status.Store(200)
	body, h := signedEvent(t, "outage-2", at) // the provider's retry of event 2
	if status, err := post(url, body, h); err != nil || status != 200 {
		t.Fatalf("retry: %d %v", status, err)
	}
	up.reset()
	out, stderr, code := replay(t, dir, "--to", up.URL)
	if code != 0 || !strings.Contains(out, "selected 4, sent 4, accepted 4, failed 0") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, stderr)
	}
	want := []string{ids[0], ids[1], ids[3], ids[4]}
	if got := up.ids(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("replay delivered %v, want %v (not the retried %s)", got, want, ids[2])
	}
	up.reset()
	if out, _, code := replay(t, dir, "--to", up.URL); code != 0 || !strings.Contains(out, "selected 0") || len(up.ids()) != 0 {
		t.Errorf("second replay: exit %d, sent %v\n%s", code, up.ids(), out)
	}
}

// TestArchiveSurvivesSIGKILL: the gateway is SIGKILLed under load. Every
// event the app received is in the archive; replay afterwards leaves none
// lost, and what it sends twice (forwarded, but killed before its outcome
// was written) is reported: at-least-once, as without the archive.
func TestArchiveSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	up := newRecorder(t, 200)
	url, gw := archiveGateway(t, dir, up.URL)
	at := time.Now()
	var sent atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body, h := signedEvent(t, fmt.Sprintf("kill-%d-%d", g, i), at)
				if _, err := post(url, body, h); err != nil {
					return // the gateway is gone
				}
				sent.Add(1)
			}
		})
	}
	for up.count() < 200 {
		time.Sleep(5 * time.Millisecond)
	}
	gw.Process.Kill()
	close(stop)
	wg.Wait()
	gw.Wait()

	received := map[string]int{}
	for _, id := range up.ids() {
		received[id]++
	}
	archived := map[string]bool{}
	var warnings []string
	r := &archive.Reader{Dir: dir, Warn: func(f string, l int, m string) { warnings = append(warnings, fmt.Sprintf("%s:%d: %s", f, l, m)) }}
	r.Scan(archive.Filter{}, func(rec *archive.Record) error {
		if rec.Deliverable() {
			archived[rec.EventID] = true
		}
		return nil
	})
	for id := range received {
		if !archived[id] {
			t.Errorf("the app received %s, which is not in the archive", id)
		}
	}
	out, stderr, code := replay(t, dir, "--to", up.URL)
	if code != 0 {
		t.Fatalf("replay after the kill: exit %d\n%s%s", code, out, stderr)
	}
	after := map[string]int{}
	for _, id := range up.ids() {
		after[id]++
	}
	doubled := 0
	for id := range archived {
		if after[id] == 0 {
			t.Errorf("event %s archived but never delivered, even by replay", id)
		}
		if after[id] > 1 {
			doubled++
		}
	}
	t.Logf("%d requests answered before the kill, %d archived, %d received, %d received twice after replay; warnings: %v",
		sent.Load(), len(archived), len(received), doubled, warnings)
	if len(archived) < 200 {
		t.Errorf("only %d events archived", len(archived))
	}
}

func (u *recorder) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.got)
}
