package caddymodule_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromium returns the path of a headless Chromium: Debian's
// chromium-headless-shell or chromium package (scripts/test installs the
// first). A missing browser fails the test: the inspector's proof is in a
// real browser, and a test that did not run must not pass.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium-headless-shell", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no headless Chromium: apt-get install chromium-headless-shell (scripts/test does)")
	return ""
}

// browser starts a headless Chromium with a fresh profile and no network
// of its own (no component updates, sync, or background requests).
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromium(t), err)
	}
	return ctx
}

// pageWatch records what a page does that the test forbids: console
// errors and warnings (CSP violations and failed loads among them),
// uncaught exceptions, and every request it makes.
type pageWatch struct {
	mu       sync.Mutex
	errors   []string
	requests []string
}

func (p *pageWatch) listen(ctx context.Context) {
	messages := chromedp.Console(ctx)
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
				p.mu.Lock()
				p.errors = append(p.errors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				p.mu.Unlock()
			}
		}
	}()
	go func() {
		for ev, err := range requests {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.requests = append(p.requests, ev.Request.URL)
			p.mu.Unlock()
		}
	}()
}

func (p *pageWatch) snapshot() (errs, reqs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errors...), append([]string(nil), p.requests...)
}

// waitJS polls a JavaScript condition until it is true.
func waitJS(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML("#events"))
			t.Fatalf("%s: not within 20s (condition %s); table:\n%s", what, cond, html)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestInspectorInBrowser drives the inspector's page in headless Chromium
// against the in-process Caddy with the gateway archiving into the
// directory the inspector reads: events sent through the gateway appear in
// the table without a reload; filtering by rejected shows the tampered
// one with its reason; its detail shows the masked payload and the
// diagnosis; the page logs no error and makes no request outside its
// origin. UPDATE_SCREENSHOT=1 writes docs/inspector.png for the README.
func TestInspectorInBrowser(t *testing.T) {
	ctx := browser(t)
	up := newUpstream(t)
	dir := t.TempDir()
	gateway(t, fmt.Sprintf(`
	handle /wazera {
		webhook_verify wazera {
			secret %s
			archive %s {
				rejected body
			}
		}
		reverse_proxy %s
	}
	handle /_webhooks* {
		webhook_inspector {
			archive %s
		}
	}`, secrets["wazera"], dir, up.URL, dir))

	first := newEvent(t, "wazera", "message.received")
	second := newEvent(t, "wazera", "message.delivered")
	for _, e := range []event{first, second} {
		if code, _, body := send(t, e); code != 200 {
			t.Fatalf("verified event: %d %s", code, body)
		}
	}

	watch := &pageWatch{}
	watch.listen(ctx)
	origin := url("")
	if err := chromedp.Do(ctx,
		chromedp.Navigate(url("/_webhooks")), // redirected to /_webhooks/
		chromedp.WaitVisible(`#events tbody tr`),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the archived events listed", `document.querySelectorAll("#events tbody tr").length === 2`)
	waitJS(t, ctx, "the live stream open", `document.querySelector("#live").classList.contains("on")`)
	// a mark that a reload would wipe
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}

	// live: a new event, a duplicate, and a tampered one
	third := newEvent(t, "wazera", "message.received")
	if code, _, _ := send(t, third); code != 200 {
		t.Fatalf("third event: %d", code)
	}
	if code, _, _ := send(t, first.resign(t)); code != 200 {
		t.Fatalf("duplicate: %d", code)
	}
	tampered := newEvent(t, "wazera", "message.received")
	tampered.body = bytes.Replace(tampered.body, []byte("order"), []byte("ordre"), 1)
	if code, _, _ := send(t, tampered); code != 401 {
		t.Fatalf("tampered event: %d, want 401", code)
	}
	waitJS(t, ctx, "the live events in the table", `document.querySelectorAll("#events tbody tr").length === 5`)
	waitJS(t, ctx, "the third event's upstream status",
		fmt.Sprintf(`[...document.querySelectorAll("#events tbody tr")].some(r => r.textContent.includes(%q) && r.querySelector(".status").textContent === "200")`, third.id))
	waitJS(t, ctx, "the duplicate", `document.querySelectorAll('#events tbody tr[data-state="duplicate"]').length === 1`)
	waitJS(t, ctx, "the counts", `document.querySelector("#count-verified").textContent === "3" && document.querySelector("#count-rejected").textContent === "1" && document.querySelector("#count-duplicate").textContent === "1"`)
	waitJS(t, ctx, "the chart", `document.querySelectorAll("#chart rect").length >= 3`)
	if reloaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded !== true`)); err != nil || reloaded {
		t.Fatalf("the page reloaded (%v)", err)
	}

	// filter by rejected: the tampered one, with its reason
	if err := chromedp.Do(ctx, chromedp.SetValue("#verdict", "rejected"), dispatchChange("#verdict")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "only the rejected one", `(() => { const rows = document.querySelectorAll("#events tbody tr");
		return rows.length === 1 && rows[0].dataset.state === "rejected" && rows[0].textContent.includes("no_match") })()`)

	// its detail: the diagnosis, and the payload masked
	if err := chromedp.Do(ctx,
		clickJS(`#events tbody tr[data-state="rejected"]`),
		chromedp.WaitVisible(`#detail`),
		chromedp.WaitVisible(`#payload`),
	); err != nil {
		t.Fatal(err)
	}
	text := func(sel string) string {
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return s
	}
	diagnosis, payload, headers, commands := text("#diagnosis"), text("#payload"), text("#headers"), text("#commands")
	for _, want := range []string{"no_match", "none of 1", "SHA-256", "X-Wazera-Signature"} {
		if !strings.Contains(diagnosis, want) {
			t.Errorf("diagnosis lacks %q:\n%s", want, diagnosis)
		}
	}
	// the form the sender signed in, by the provider's name for it
	if !regexp.MustCompile(`Signature form\s+hex`).MatchString(diagnosis) {
		t.Errorf("diagnosis lacks the signature form (hex):\n%s", diagnosis)
	}
	if !strings.Contains(payload, "message.received") || !strings.Contains(payload, "•") || !strings.Contains(payload, "[text: ") {
		t.Errorf("payload not shown masked:\n%s", payload)
	}
	for _, plain := range []string{"201234567890", "is my ordre on its way"} {
		if strings.Contains(payload, plain) {
			t.Errorf("payload shows %q unmasked:\n%s", plain, payload)
		}
	}
	sig := tampered.header.Get("X-Wazera-Signature")
	if strings.Contains(headers, sig) || strings.Contains(diagnosis, sig) {
		t.Errorf("the full signature is shown")
	}
	if strings.Contains(headers+diagnosis+payload+commands, secrets["wazera"]) {
		t.Errorf("the secret is shown")
	}
	if !strings.Contains(commands, "caddy webhook check --provider wazera") {
		t.Errorf("commands: %s", commands)
	}

	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		// the whole table with the reject's detail open beside it
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(s => { s.selectedIndex = 0; return s.dispatchEvent(new Event("change")) })(document.querySelector("#verdict"))`)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "every row again", `document.querySelectorAll("#events tbody tr").length === 5`)
		if err := chromedp.Do(ctx, chromedp.Sleep(2500*time.Millisecond)); err != nil { // the fresh rows' highlight fades
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "docs", "inspector.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	errs, reqs := watch.snapshot()
	for _, e := range errs {
		t.Errorf("page error: %s", e)
	}
	if len(reqs) < 5 {
		t.Errorf("only %d requests recorded: %q", len(reqs), reqs)
	}
	for _, r := range reqs {
		if !strings.HasPrefix(r, origin+"/") {
			t.Errorf("a request left the page's origin %s: %s", origin, r)
		}
	}
}

// dispatchChange fires a change event on a select, as a user's choice does.
// clickJS clicks the element that sel selects, in the page, in one step.
// chromedp.Click queries the node, then clicks it: when the stream that a
// filter change reconnects re-renders the row in between (a loaded machine),
// the node is stale and the click fails with "Could not find node".
func clickJS(sel string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		ok, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.click(); return true })()`, sel))(ctx, t)
		if err == nil && !ok {
			err = fmt.Errorf("nothing to click at %s", sel)
		}
		return chromedp.Void{}, err
	}
}

func dispatchChange(sel string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q).dispatchEvent(new Event("change"))`, sel))(ctx, t)
		return chromedp.Void{}, err
	}
}
