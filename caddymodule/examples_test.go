package caddymodule_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestExampleCaddyfile: Caddyfile.example adapts and provisions with the
// demo secrets that make run sets, and keeps signatures out of Caddy's logs
// with the same filter the end-to-end tests check.
func TestExampleCaddyfile(t *testing.T) {
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(signatureLogFilter), "\n") {
		if !strings.Contains(string(raw), strings.TrimSpace(line)) {
			t.Errorf("Caddyfile.example lacks the log filter line %q", strings.TrimSpace(line))
		}
	}
	setDemoSecrets(t)
	out, err := adapt(t, string(raw))
	if err != nil {
		t.Fatal(err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&cfg); err != nil {
		t.Errorf("Caddyfile.example does not provision with the Makefile's demo secrets: %v", err)
	}
	if strings.Contains(string(out), "demo-wazera-secret") {
		t.Error("a secret was baked into the adapted config; use {env.*} placeholders")
	}
}

// setDemoSecrets sets the demo secrets that make run sets (the Makefile's
// "export NAME ?= value" lines) for the test, and returns them by name.
func setDemoSecrets(t *testing.T) map[string]string {
	t.Helper()
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^export (\w+_SECRET)\s*\?=\s*(\S+)$`).FindAllStringSubmatch(string(makefile), -1) {
		t.Setenv(m[1], m[2])
		found[m[1]] = m[2]
	}
	if len(found) != len(providerNames) {
		t.Fatalf("the Makefile sets %d demo secrets, want one per provider (%d)", len(found), len(providerNames))
	}
	return found
}

// TestExampleScripts runs each examples/<provider>.sh, which signs with
// openssl rather than this project's code, against the gateway: each
// event must be verified and forwarded.
func TestExampleScripts(t *testing.T) {
	for _, tool := range []string{"sh", "curl", "openssl", "od"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the examples: %v", tool, err)
		}
	}
	up := newUpstream(t)
	gateway(t, allProviders(up, ""))
	env := append(os.Environ(),
		"WAZERA_SECRET="+secrets["wazera"], "ZAVU_SECRET="+secrets["zavu"], "WASTACK_SECRET="+secrets["wastack"],
		"WAZAPIN_SECRET="+secrets["wazapin"], "VOBIZ_SECRET="+secrets["vobiz"])
	for _, p := range providerNames {
		t.Run(p, func(t *testing.T) {
			before := len(up.received())
			cmd := exec.Command("sh", filepath.Join("..", "examples", p+".sh"), url("/"+p))
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if !strings.HasSuffix(strings.TrimSpace(string(out)), "200") {
				t.Fatalf("not accepted: %s", out)
			}
			got := up.received()
			if len(got) != before+1 || got[len(got)-1].header.Get("Webhook-Provider") != p {
				t.Fatalf("upstream got %d new requests", len(got)-before)
			}
		})
	}
}

// TestMakeBuildSaysWhatItDoes: make run's build step says, before it
// starts, that the first build is long and about how long, so that a new
// user does not take the silence for a hang; once ./caddy exists it says
// less. The Makefile runs in a scratch directory with GO=true, so nothing
// is built.
func TestMakeBuildSaysWhatItDoes(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is needed: %v", err)
	}
	dir := t.TempDir()
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), makefile, 0o644); err != nil {
		t.Fatal(err)
	}
	build := func() string {
		t.Helper()
		out, err := exec.Command("make", "-C", dir, "--no-print-directory", "build", "GO=true").CombinedOutput()
		if err != nil {
			t.Fatalf("make build: %v\n%s", err, out)
		}
		return strings.SplitN(string(out), "\n", 2)[0]
	}
	if first := build(); !strings.Contains(first, "building ./caddy") || !strings.Contains(first, "first build") || !strings.Contains(first, "minutes") {
		t.Errorf("the first build starts with %q, want a line saying it builds ./caddy and takes minutes", first)
	}
	if err := os.WriteFile(filepath.Join(dir, "caddy"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if again := build(); !strings.Contains(again, "building ./caddy") || strings.Contains(again, "minutes") {
		t.Errorf("a rebuild starts with %q, want a short line", again)
	}
}
