package webhookcmd_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/internal/testutil"
	"github.com/wagate/caddy-webhook/verify"
	"github.com/wagate/caddy-webhook/verify/samples"
)

// The tests run the real binary (cmd/caddy, built once) as a user would:
// the subcommands against a gateway that is the same binary running
// Caddyfile-configured webhook_verify handlers.
var caddyBin string // built from this module by TestMain

func TestMain(m *testing.M) { testutil.MainWithCaddy(m, "..", &caddyBin) }

var secrets = map[string]string{
	verify.Wazera:  "wazera-cmd-secret",
	verify.Zavu:    "whsec_zavu-cmd-secret",
	verify.WAStack: "wastack-cmd-secret",
	verify.Wazapin: "whsec_Y21kLXdhemFwaW4tc2VjcmV0",
	verify.Vobiz:   "vobiz-cmd-secret",
}

var providerNames = []string{verify.Wazera, verify.Zavu, verify.WAStack, verify.Wazapin, verify.Vobiz}

// caddy runs the binary and returns its stdout, stderr and exit status.
func caddy(t *testing.T, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(caddyBin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

type upstream struct {
	*httptest.Server
	mu  sync.Mutex
	ids []string
}

func (u *upstream) count(id string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, got := range u.ids {
		if got == id {
			n++
		}
	}
	return n
}

// startGateway runs `caddy run` on a Caddyfile with every provider, in
// front of an upstream in this process.
func startGateway(t *testing.T) (string, *upstream) {
	up := &upstream{}
	up.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up.mu.Lock()
		up.ids = append(up.ids, r.Header.Get("Webhook-Event-Id"))
		up.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, "accepted")
	}))
	t.Cleanup(up.Close)
	var site strings.Builder
	for _, p := range providerNames {
		fmt.Fprintf(&site, "\thandle /%s {\n\t\twebhook_verify %s {\n\t\t\tsecret %s\n\t\t}\n\t\treverse_proxy %s\n\t}\n", p, p, secrets[p], up.URL)
	}
	return serve(t, site.String()), up
}

// serve runs `caddy run` on a site with the given body and a
// handle_errors that answers "<status> <message>", and returns its base URL.
func serve(t *testing.T, site string) string {
	port := testutil.FreePort()
	runCaddy(t, port, fmt.Sprintf("{\n\tadmin off\n}\nhttp://127.0.0.1:%d {\n%s\thandle_errors {\n\t\trespond \"{err.status_code} {err.message}\"\n\t}\n}\n", port, site))
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// runCaddy runs `caddy run` on a Caddyfile until the test ends, once port
// accepts connections, and returns the process.
func runCaddy(t *testing.T, port int, caddyfile string) *exec.Cmd {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "Caddyfile")
	os.WriteFile(cfg, []byte(caddyfile), 0o644)
	var logs bytes.Buffer
	cmd := exec.Command(caddyBin, "run", "--adapter", "caddyfile", "--config", cfg)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return cmd
		}
		if i == 200 {
			t.Fatalf("gateway did not start:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// headers parses sign's output.
func headers(t *testing.T, out string) http.Header {
	h := http.Header{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, val, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("sign printed %q", line)
		}
		h.Add(name, val)
	}
	return h
}

func openssl(t *testing.T, input []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command("openssl", append([]string{"dgst", "-sha256", "-r"}, args...)...)
	cmd.Stdin = bytes.NewReader(input)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	return strings.Fields(string(out))[0]
}

// TestSignAgreesWithOpenSSL: what sign prints matches openssl's HMAC for
// every hex or base64 form, and the published Standard Webhooks vector.
func TestSignAgreesWithOpenSSL(t *testing.T) {
	body := []byte(`{"id":"evt_1","event":"message.read","type":"message.read","timestamp":1705312200000,"data":{"status":"read"}}`)
	file := filepath.Join(t.TempDir(), "body.json")
	os.WriteFile(file, body, 0o644)
	sign := func(provider, form string, extra ...string) http.Header {
		out, stderr, code := caddy(t, nil, append([]string{"webhook", "sign", "--provider", provider, "--secret", secrets[provider], "--form", form, "--file", file}, extra...)...)
		if code != 0 {
			t.Fatalf("sign %s %s: %d %s", provider, form, code, stderr)
		}
		return headers(t, out)
	}
	hexMAC := func(provider string) string { return openssl(t, body, "-hmac", secrets[provider]) }
	b64 := func(hexs string) string { b, _ := hex.DecodeString(hexs); return base64.StdEncoding.EncodeToString(b) }

	if got := sign(verify.Wazera, "hex").Get("X-Wazera-Signature"); got != hexMAC(verify.Wazera) {
		t.Errorf("wazera: %s, openssl %s", got, hexMAC(verify.Wazera))
	}
	if got := sign(verify.WAStack, "sha256").Get("X-Wastack-Signature"); got != "sha256="+hexMAC(verify.WAStack) {
		t.Errorf("wastack: %s", got)
	}
	if got := sign(verify.Zavu, "seed").Get("X-Zavu-Signature"); got != "sha256="+hexMAC(verify.Zavu) {
		t.Errorf("zavu seed: %s", got)
	}
	v2 := openssl(t, append([]byte("1705312260."), body...), "-hmac", secrets[verify.Zavu])
	if got := sign(verify.Zavu, "v2", "--timestamp", "1705312260").Get("X-Zavu-Signature"); got != "t=1705312260,v1="+hexMAC(verify.Zavu)+",v2="+v2 {
		t.Errorf("zavu v2: %s", got)
	}
	if got := sign(verify.Vobiz, "current").Get("X-Webhook-Signature"); got != hexMAC(verify.Vobiz) {
		t.Errorf("vobiz: %s", got)
	}
	if got := sign(verify.Vobiz, "seed-base64").Get("X-Vobiz-Signature"); got != "sha256="+b64(hexMAC(verify.Vobiz)) {
		t.Errorf("vobiz seed-base64: %s", got)
	}
	// Standard Webhooks' published vector, through the binary
	std := filepath.Join(t.TempDir(), "std.json")
	os.WriteFile(std, []byte(`{"test": 2432232314}`), 0o644)
	out, _, code := caddy(t, nil, "webhook", "sign", "--provider", "wazapin", "--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"--id", "msg_p5jXN8AQM9LWM0D4loKWxJek", "--timestamp", "1614265330", "--file", std)
	if h := headers(t, out); code != 0 || h.Get("Webhook-Signature") != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" || h.Get("Webhook-Timestamp") != "1614265330" {
		t.Errorf("standard webhooks vector: %q", out)
	}
	// stdin works as the body
	out, _, _ = caddy(t, body, "webhook", "sign", "--provider", "wazera", "--secret", secrets[verify.Wazera])
	if headers(t, out).Get("X-Wazera-Signature") != hexMAC(verify.Wazera) {
		t.Errorf("sign from stdin: %q", out)
	}
}

// TestSendToGateway: send's events verify at a real gateway; --repeat shows
// the duplicates caught; --tamper gets a 401.
func TestSendToGateway(t *testing.T) {
	base, up := startGateway(t)
	for _, p := range providerNames {
		t.Run(p, func(t *testing.T) {
			for _, e := range samples.Events(p) {
				out, stderr, code := caddy(t, nil, "webhook", "send", "--provider", p, "--secret", secrets[p], "--url", base+"/"+p, "--event", e)
				if code != 0 || !strings.Contains(out, "200 OK\naccepted") {
					t.Fatalf("send %s: exit %d\n%s%s", e, code, out, stderr)
				}
			}
			out, _, code := caddy(t, nil, "webhook", "send", "--provider", p, "--secret", secrets[p], "--url", base+"/"+p, "--repeat", "3")
			id := strings.Fields(strings.SplitN(out, "\n", 2)[0])[1] // "event <id>, type ..."
			id = strings.TrimSuffix(id, ",")
			if code != 0 || strings.Count(out, `"status":"duplicate"`) != 2 || up.count(id) != 1 {
				t.Errorf("--repeat 3: exit %d, upstream got %s %d times\n%s", code, id, up.count(id), out)
			}
			out, _, code = caddy(t, nil, "webhook", "send", "--provider", p, "--secret", secrets[p], "--url", base+"/"+p, "--tamper")
			if code != 0 || !strings.Contains(out, "401 Unauthorized") || !strings.Contains(out, "no matching signature") {
				t.Errorf("--tamper: %s", out)
			}
		})
	}
	// a body from a file, with a fixed id and timestamp
	file := filepath.Join(t.TempDir(), "e.json")
	now := time.Now().UTC().Format(time.RFC3339)
	os.WriteFile(file, []byte(`{"event":"contact.created","timestamp":"`+now+`","data":{"contact_id":"ct_1"}}`), 0o644)
	out, _, code := caddy(t, nil, "webhook", "send", "--provider", "wazera", "--secret", secrets[verify.Wazera], "--url", base+"/wazera", "--file", file)
	if code != 0 || !strings.Contains(out, "type contact.created") || !strings.Contains(out, "200 OK") {
		t.Errorf("send --file: %s", out)
	}
}

// TestCheckCapturedRequests writes captured requests and checks them.
func TestCheckCapturedRequests(t *testing.T) {
	now := time.Now()
	body, _ := samples.Body("wazapin", "message.new", samples.Fresh(now))
	v, _ := verify.New("wazapin", verify.Options{Secrets: []string{secrets[verify.Wazapin]}})
	h, _ := v.Sign(body, verify.SignOptions{ID: "msg_capture1", Time: now})
	capture := func(name string, h http.Header, body []byte, crlf bool, contentLength int) string {
		var b bytes.Buffer
		nl := "\n"
		if crlf {
			nl = "\r\n"
		}
		b.WriteString("POST /wazapin HTTP/1.1" + nl + "Host: gateway.example.com" + nl + "Content-Type: application/json" + nl)
		fmt.Fprintf(&b, "Content-Length: %d%s", contentLength, nl)
		for k, vals := range h {
			for _, val := range vals {
				b.WriteString(k + ": " + val + nl)
			}
		}
		b.WriteString(nl)
		b.Write(body)
		f := filepath.Join(t.TempDir(), name)
		os.WriteFile(f, b.Bytes(), 0o644)
		return f
	}
	check := func(file string, extra ...string) (string, string, int) {
		return caddy(t, nil, append([]string{"webhook", "check", "--provider", "wazapin", "--secret", secrets[verify.Wazapin], "--file", file}, extra...)...)
	}
	tampered := bytes.Replace(body, []byte("inbound"), []byte("outbound"), 1)
	noSig := h.Clone()
	noSig.Del("Webhook-Signature")
	tests := []struct {
		name string
		file string
		args []string
		code int
		want []string
	}{
		{"good, CRLF", capture("good.http", h, body, true, len(body)), nil, 0, []string{"verified: wazapin event msg_capture1, type message.received (message.new)"}},
		{"good, LF", capture("lf.http", h, body, false, len(body)), nil, 0, []string{"verified:"}},
		{"body altered", capture("altered.http", h, tampered, true, len(tampered)), nil, 1, []string{"does not match", "secret is wrong, or the body"}},
		{"trailing newline added", capture("nl.http", h, append(append([]byte{}, body...), '\n'), true, len(body)), nil, 1, []string{"does not match", fmt.Sprintf("the body is %d bytes but Content-Length says %d", len(body)+1, len(body))}},
		{"body not kept", capture("nobody.http", h, nil, true, len(body)), nil, 1, []string{"the capture has no body", "says nothing about the secret", "rejected body"}},
		{"no signature", capture("nosig.http", noSig, body, true, len(body)), nil, 1, []string{"missing: expected Webhook-Signature or Svix-Signature"}},
		{"checked an hour later", capture("late.http", h, body, true, len(body)), []string{"--at", now.Add(time.Hour).Format(time.RFC3339)}, 1, []string{"too old: 55m", "beyond the 5m0s window", "try --at"}},
		{"checked as of the capture", capture("asof.http", h, body, true, len(body)), []string{"--at", fmt.Sprint(now.Unix())}, 0, []string{"verified:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, code := check(tt.file, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.code, out, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out+stderr, secrets[verify.Wazapin]) || strings.Contains(out+stderr, "Y21kLXdhemFwaW4tc2VjcmV0") {
				t.Error("the secret was printed")
			}
		})
	}
}

// TestBadInput: every mistake is one line on stderr naming it, a non-zero
// exit, and never a usage dump or a stack trace.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "notjson.txt")
	os.WriteFile(notJSON, []byte("hello"), 0o644)
	garbage := filepath.Join(dir, "garbage.http")
	os.WriteFile(garbage, []byte("\x00\x01 not http at all"), 0o644)
	deadPort := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort())
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"webhook", "sign", "--secret", "s"}, "--provider is required"},
		{[]string{"webhook", "sign", "--provider", "wazera"}, "--secret is required"},
		{[]string{"webhook", "sign", "--provider", "whatsup", "--secret", "s", "--file", notJSON}, `unknown provider "whatsup"`},
		{[]string{"webhook", "sign", "--provider", "wazera", "--secret", "s", "--file", notJSON}, "not JSON"},
		{[]string{"webhook", "sign", "--provider", "wazera", "--secret", "s", "--file", filepath.Join(dir, "missing.json")}, "no such file"},
		{[]string{"webhook", "sign", "--provider", "wazapin", "--secret", "whsec_not*base64", "--file", notJSON}, "not a whsec_ secret"},
		{[]string{"webhook", "sign", "--provider", "zavu", "--secret", "s", "--form", "v9", "--file", notJSON}, "not JSON"},
		{[]string{"webhook", "send", "--provider", "wazera", "--secret", "s"}, "--url is required"},
		{[]string{"webhook", "send", "--provider", "wazera", "--secret", "s", "--url", "ftp://x"}, "--url is required"},
		{[]string{"webhook", "send", "--provider", "wazera", "--secret", "s", "--url", "http://" + deadPort}, "connection refused"},
		{[]string{"webhook", "send", "--provider", "wazera", "--secret", "s", "--url", "http://x", "--event", "message.teleported"}, `no sample for provider "wazera" event "message.teleported"`},
		{[]string{"webhook", "send", "--provider", "wazera", "--secret", "s", "--url", "http://x", "--file", notJSON}, "is not JSON"},
		{[]string{"webhook", "send", "--provider", "wazera", "--secret", "s", "--url", "http://x", "--repeat", "0"}, "--repeat must be at least 1"},
		{[]string{"webhook", "send", "--provider", "zavu", "--secret", "s", "--url", "http://x", "--form", "v9"}, `no signature form "v9"`},
		{[]string{"webhook", "send", "--provider", "zavu", "--secret", "s", "--url", "http://x", "--timestamp", "yesterday"}, "--timestamp"},
		{[]string{"webhook", "check", "--provider", "wazera", "--secret", "s"}, "--file is required"},
		{[]string{"webhook", "check", "--provider", "wazera", "--secret", "s", "--file", garbage}, "not an HTTP request"},
		{[]string{"webhook", "check", "--provider", "wazera", "--secret", "s", "--file", notJSON}, "not an HTTP request"},
		{[]string{"webhook", "check", "--provider", "wazera", "--secret", "s", "--file", garbage, "--at", "noon"}, "--at"},
		{[]string{"webhook", "sign", "--provider", "wazera", "--secret", "s", "extra-arg"}, `unexpected argument "extra-arg"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[1:], " "), func(t *testing.T) {
			out, stderr, code := caddy(t, []byte("{}"), tt.args...)
			if code == 0 {
				t.Errorf("exit 0; stdout %q", out)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q, want one line with %q", stderr, tt.want)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") || strings.Contains(stderr, "Usage:") {
				t.Errorf("stack trace or usage dump: %s", stderr)
			}
		})
	}
}
