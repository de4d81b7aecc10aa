package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"golang.org/x/crypto/bcrypt"

	"github.com/wagate/caddy-webhook/internal/redistest"
	"github.com/wagate/caddy-webhook/verify"
)

// The README's fenced blocks. Caddyfile blocks carry one of three info
// strings:
//
//	```caddyfile           a whole Caddyfile
//	```caddyfile fragment  site-level directives: the test wraps them in a site
//	```caddyfile syntax    the option grammar, with <placeholders>: only formatted
type readmeBlock struct {
	info, text string
	line       int
}

func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var cur *readmeBlock
	for i, line := range strings.SplitAfter(string(raw), "\n") {
		fence, ok := strings.CutPrefix(line, "```")
		switch {
		case ok && cur == nil:
			cur = &readmeBlock{info: strings.TrimSpace(fence), line: i + 1}
		case ok:
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line
		}
	}
	if cur != nil {
		t.Fatalf("README.md: the block opened on line %d is not closed", cur.line)
	}
	return blocks
}

// caddyfileBlocks returns the README's Caddyfile blocks by kind: "" (a
// whole Caddyfile), "fragment" or "syntax"; any other info string naming
// Caddy is an error, so that no block escapes the tests by its tag.
func caddyfileBlocks(t *testing.T) map[string][]readmeBlock {
	t.Helper()
	kinds := map[string][]readmeBlock{}
	for _, b := range readmeBlocks(t) {
		lang, kind, _ := strings.Cut(b.info, " ")
		if !strings.Contains(strings.ToLower(lang), "caddy") {
			continue
		}
		if lang != "caddyfile" || (kind != "" && kind != "fragment" && kind != "syntax") {
			t.Errorf("README.md:%d: info string %q: want caddyfile, caddyfile fragment or caddyfile syntax", b.line, b.info)
			continue
		}
		kinds[kind] = append(kinds[kind], b)
	}
	return kinds
}

// readmeEnv gives each {env.NAME} a README snippet uses a value that
// provisions: secrets in their provider's form, REDIS_* for a real
// redis-server that wants a password.
func readmeEnv(t *testing.T) map[string]string {
	t.Helper()
	redis, err := redistest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(redis.Close)
	if _, err := redis.Do("CONFIG", "SET", "requirepass", "readme-redis-password"); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"WAZERA_SECRET":      "readme-wazera-secret",
		"ZAVU_SECRET":        "whsec_readme-zavu-secret",
		"WASTACK_SECRET":     "readme-wastack-secret",
		"WAZAPIN_SECRET":     "whsec_cmVhZG1lLXdhemFwaW4tc2VjcmV0",
		"WAZAPIN_SECRET_OLD": "whsec_cmVhZG1lLXdhemFwaW4tb2xkLXNlY3JldA==",
		"VOBIZ_SECRET":       "readme-vobiz-secret",
		"ACME_SECRET":        "readme-acme-secret",
		"REDIS_ADDR":         redis.Addr,
		"REDIS_PASSWORD":     "readme-redis-password",
		"WEBHOOK_ARCHIVE":    t.TempDir(),
	}
}

var envPlaceholder = regexp.MustCompile(`\{env\.(\w+)\}|\{\$(\w+)\}`)

// wrapFragment puts site-level directives in a site, one tab deeper, so
// that a formatted fragment stays formatted.
func wrapFragment(fragment string) string {
	var b strings.Builder
	b.WriteString("http://localhost {\n")
	for _, line := range strings.SplitAfter(fragment, "\n") {
		if strings.TrimSpace(line) != "" {
			b.WriteString("\t")
		}
		b.WriteString(line)
	}
	b.WriteString("}\n")
	return b.String()
}

// adaptClean adapts a Caddyfile as `caddy adapt` does and fails on any
// error or warning (an unformatted input is a warning).
func adaptClean(t *testing.T, where, input string) []byte {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "README.md"})
	if err != nil {
		t.Fatalf("%s: adapt: %v\n%s", where, err, input)
	}
	for _, w := range warnings {
		t.Errorf("%s: adapt warns: %s (line %d of:\n%s)", where, w.Message, w.Line, input)
	}
	return out
}

// TestREADMECaddyfiles: every Caddyfile snippet of the README is
// `caddy fmt`-clean, adapts without a warning and provisions.
func TestREADMECaddyfiles(t *testing.T) {
	env := readmeEnv(t)
	kinds := caddyfileBlocks(t)
	if len(kinds[""]) == 0 || len(kinds["fragment"]) == 0 || len(kinds["syntax"]) == 0 {
		t.Fatalf("found %d whole, %d fragment and %d syntax Caddyfile blocks; want some of each", len(kinds[""]), len(kinds["fragment"]), len(kinds["syntax"]))
	}
	for kind, blocks := range kinds {
		for _, b := range blocks {
			where := "README.md:" + strconv.Itoa(b.line)
			t.Run(where, func(t *testing.T) {
				if got := string(caddyfile.Format([]byte(b.text))); got != b.text {
					t.Errorf("%s is not caddy fmt-clean; caddy fmt gives:\n%s", where, got)
				}
				if kind == "syntax" {
					return
				}
				for _, m := range envPlaceholder.FindAllStringSubmatch(b.text, -1) {
					name := m[1] + m[2]
					v, ok := env[name]
					if !ok {
						t.Fatalf("%s uses %s: give it a value in readmeEnv", where, m[0])
					}
					t.Setenv(name, v)
				}
				input := b.text
				if kind == "fragment" {
					input = wrapFragment(b.text)
				}
				var cfg caddy.Config
				if err := json.Unmarshal(adaptClean(t, where, input), &cfg); err != nil {
					t.Fatal(err)
				}
				if err := caddy.Validate(&cfg); err != nil {
					t.Errorf("%s does not provision: %v", where, err)
				}
			})
		}
	}
}

// TestREADMEJSON: the JSON section shows part of what `caddy adapt` emits
// for the README's first whole Caddyfile, value for value, formatted as
// `caddy adapt --pretty` formats it.
func TestREADMEJSON(t *testing.T) {
	whole := caddyfileBlocks(t)[""]
	if len(whole) == 0 {
		t.Fatal("no whole Caddyfile in README.md")
	}
	var shown *readmeBlock
	raw, _ := os.ReadFile("../README.md")
	section := string(raw)[strings.Index(string(raw), "### JSON\n"):]
	for _, b := range readmeBlocks(t) {
		if b.info == "json" && strings.Contains(section, "```json\n"+b.text) {
			shown = &b
			break
		}
	}
	if shown == nil {
		t.Fatal("no json block in the README's JSON section")
	}
	var want any
	if err := json.Unmarshal([]byte(shown.text), &want); err != nil {
		t.Fatalf("README.md:%d is not JSON: %v", shown.line, err)
	}
	var pretty bytes.Buffer
	json.Indent(&pretty, []byte(strings.TrimSpace(shown.text)), "", "\t")
	if pretty.String() != strings.TrimSpace(shown.text) {
		t.Errorf("README.md:%d is not formatted as caddy adapt --pretty formats (tabs):\n%s", shown.line, pretty.String())
	}
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(whole[0].text), nil)
	if err != nil {
		t.Fatal(err)
	}
	var adapted any
	if err := json.Unmarshal(out, &adapted); err != nil {
		t.Fatal(err)
	}
	if !holds(adapted, want) {
		var all bytes.Buffer
		json.Indent(&all, out, "", "\t")
		t.Errorf("README.md:%d is not part of what the Caddyfile of README.md:%d adapts to:\n%s", shown.line, whole[0].line, all.String())
	}
}

// holds reports whether v equals want or holds it at any depth.
func holds(v, want any) bool {
	if reflect.DeepEqual(v, want) {
		return true
	}
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			if holds(x, want) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if holds(x, want) {
				return true
			}
		}
	}
	return false
}

// TestREADMERoutingByEventType runs the README's routing example in a real
// Caddy, its two upstreams replaced by recording ones: each signed event
// reaches only the upstream its canonical type selects, and a forged one
// neither.
func TestREADMERoutingByEventType(t *testing.T) {
	var snippet string
	for _, b := range caddyfileBlocks(t)["fragment"] {
		if strings.Contains(b.text, "{http.webhook.event_type}") {
			snippet = b.text
		}
	}
	if snippet == "" {
		t.Fatal("README.md has no Caddyfile fragment routing on {http.webhook.event_type}")
	}
	bot, app := newUpstream(t), newUpstream(t)
	for _, r := range [][2]string{{"bot:3000", bot.URL}, {"app:3000", app.URL}} {
		if !strings.Contains(snippet, r[0]) {
			t.Fatalf("the routing example no longer proxies to %s: update this test", r[0])
		}
		snippet = strings.ReplaceAll(snippet, r[0], r[1])
	}
	t.Setenv("ZAVU_SECRET", secrets[verify.Zavu])
	gateway(t, indentSite(snippet))

	inbound := newEvent(t, verify.Zavu, "message.inbound")
	delivered := newEvent(t, verify.Zavu, "message.delivered")
	failed := newEvent(t, verify.Zavu, "message.failed")
	for _, e := range []event{inbound, delivered, failed} {
		if status, _, body := send(t, e); status != http.StatusOK {
			t.Fatalf("%s: %d %s", e.id, status, body)
		}
	}
	forged := newEvent(t, verify.Zavu, "message.inbound")
	forged.body = bytes.Replace(forged.body, []byte("Hello"), []byte("Jello"), 1)
	if status, _, _ := send(t, forged); status != http.StatusUnauthorized {
		t.Errorf("a forged event: %d, want 401", status)
	}

	if got := bot.counts(); len(got) != 1 || got[inbound.id] != 1 {
		t.Errorf("the bot received %v, want only the inbound message %s", got, inbound.id)
	}
	for _, r := range bot.received() {
		if typ := r.header.Get("Webhook-Event-Type"); typ != "message.received" {
			t.Errorf("the bot received a %s", typ)
		}
	}
	if got := app.counts(); len(got) != 2 || got[delivered.id] != 1 || got[failed.id] != 1 {
		t.Errorf("the app received %v, want only %s and %s", got, delivered.id, failed.id)
	}
}

// indentSite indents site-level directives one tab, for gateway().
func indentSite(fragment string) string {
	w := wrapFragment(fragment)
	return strings.TrimSuffix(strings.TrimPrefix(w, "http://localhost {\n"), "}\n")
}

// TestREADMEInspectorBesideCatchAll: the README's inspector fragment and
// the catch-all `handle` of its working Caddyfile, in one site, through a
// real Caddy: the page answers at its path (401 without the password, the
// page with it), and other paths still get the catch-all's 404. A `route`
// there would lose to the catch-all: Caddy orders handle before route.
func TestREADMEInspectorBesideCatchAll(t *testing.T) {
	var inspector, whole string
	for _, b := range caddyfileBlocks(t)["fragment"] {
		if strings.Contains(b.text, "webhook_inspector {") {
			inspector = b.text
		}
	}
	if blocks := caddyfileBlocks(t)[""]; len(blocks) > 0 {
		whole = blocks[0].text
	}
	i := strings.Index(whole, "\thandle {\n")
	if inspector == "" || i < 0 {
		t.Fatal("README.md: no inspector fragment, or no catch-all handle in the first whole Caddyfile")
	}
	catchAll := whole[i:strings.LastIndex(whole, "}")] // the catch-all and handle_errors, to the site's end
	const password = "correct horse"
	// the README's $2a$14$ cost takes seconds a check under -race: the
	// lowest cost tests the same layout
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(inspector, "$2a$14$...") || !strings.Contains(inspector, "/var/lib/caddy/webhooks") {
		t.Fatalf("the inspector fragment has changed: update this test\n%s", inspector)
	}
	site := strings.NewReplacer("$2a$14$...", string(hash), "/var/lib/caddy/webhooks", t.TempDir()).Replace(inspector)
	gatewayWith(t, "", indentSite(site)+catchAll)
	get := func(path string, auth bool) (int, string) {
		req, _ := http.NewRequest("GET", url(path), nil)
		if auth {
			req.SetBasicAuth("admin", password)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/_webhooks/", true); code != 200 || !strings.Contains(body, "Webhook inspector") {
		t.Errorf("the inspector page with the password: %d %.80q, want 200 and the page", code, body)
	}
	if code, _ := get("/_webhooks/api/events", false); code != 401 {
		t.Errorf("the inspector's API without the password: %d, want 401", code)
	}
	if code, body := get("/elsewhere", true); code != 404 || !strings.Contains(body, "no webhook route") {
		t.Errorf("another path: %d %.80q, want the catch-all's 404", code, body)
	}
}
