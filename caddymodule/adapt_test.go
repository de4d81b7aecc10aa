package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

var update = flag.Bool("update", false, "rewrite the expected JSON of testdata/adapt from the adapter's output (review the diff)")

const goldenSep = "\n----------\n"

func adapt(t *testing.T, caddyfile string) ([]byte, error) {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		return nil, err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return pretty.Bytes(), nil
}

// TestAdapt compares each Caddyfile under testdata/adapt with the JSON it
// must adapt to, the part after the ---------- line.
func TestAdapt(t *testing.T) {
	files, _ := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, want, _ := strings.Cut(string(raw), goldenSep)
			got, err := adapt(t, caddyfile)
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			if *update {
				os.WriteFile(f, []byte(strings.TrimRight(caddyfile, "\n")+goldenSep+string(got)+"\n"), 0o644)
				return
			}
			if strings.TrimSpace(want) != strings.TrimSpace(string(got)) {
				t.Errorf("adapted JSON differs from %s:\n%s", f, got)
			}
		})
	}
}

// TestConfigErrors: each file under testdata/errors starts with
// "# error: <text>"; adapting it, or else provisioning and validating the
// result, must fail with an error containing that text.
func TestConfigErrors(t *testing.T) {
	files, _ := filepath.Glob("testdata/errors/*.caddyfile")
	if len(files) == 0 {
		t.Fatal("no error cases")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(raw), "\n")
			want, ok := strings.CutPrefix(first, "# error: ")
			if !ok {
				t.Fatalf("%s does not start with # error:", f)
			}
			out, err := adapt(t, string(raw))
			if err == nil {
				var cfg caddy.Config
				if err := json.Unmarshal(out, &cfg); err != nil {
					t.Fatal(err)
				}
				err = caddy.Validate(&cfg)
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v\nwant one containing %q", err, want)
			}
			if err != nil && strings.Contains(err.Error(), "not*base64") {
				t.Errorf("the error repeats a secret: %v", err)
			}
		})
	}
}
