package bench_test

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/bench/sim"
	"github.com/wagate/caddy-webhook/internal/testutil"
	"github.com/wagate/caddy-webhook/verify"
)

// -full runs the drills at full size (make faults); without it they run a
// short version in seconds, as part of go test ./...
var full = flag.Bool("full", false, "run the fault drills at full size")

var caddyBin string // built from this module by TestMain

func TestMain(m *testing.M) { testutil.MainWithCaddy(m, "..", &caddyBin) }

// size returns the short or the full value.
func size(short, long int) int {
	if *full {
		return long
	}
	return short
}

var secrets = map[string]string{
	verify.Wazera:  "drill-wazera",
	verify.Zavu:    "whsec_drill-zavu",
	verify.WAStack: "drill-wastack",
	verify.Wazapin: "whsec_ZHJpbGwtd2F6YXBpbg==",
	verify.Vobiz:   "drill-vobiz",
}

var providers = []string{verify.Wazera, verify.Zavu, verify.WAStack, verify.Wazapin, verify.Vobiz}

func sources(t *testing.T, bodySize int) []*sim.Source {
	var out []*sim.Source
	for _, p := range providers {
		s, err := sim.NewSource(p, secrets[p], bodySize)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// gatewayConfig is a Caddyfile with every provider on its own path.
type gatewayConfig struct {
	Port, AdminPort int
	Upstream        string
	Dedupe          string // Caddyfile dedupe line or block; "" for memory
	Extra           string // more lines in each webhook_verify block
	ExtraSecret     string // a second secret (rotation)
}

func (c gatewayConfig) caddyfile() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin localhost:%d\n\tgrace_period 10s\n\tlog {\n\t\tlevel WARN\n\t}\n}\nhttp://127.0.0.1:%d {\n", c.AdminPort, c.Port)
	for _, p := range providers {
		fmt.Fprintf(&b, "\thandle /%s {\n\t\twebhook_verify %s {\n\t\t\tsecret %s\n", p, p, secrets[p])
		if !strings.Contains(c.Extra, "in_flight_ttl") {
			// compressed like the retry schedules: a claim orphaned by a
			// failure must expire well inside the compressed horizon, as 60 s
			// does inside the providers' hours of retries
			b.WriteString("\t\t\tin_flight_ttl 1s\n")
		}
		if c.ExtraSecret != "" {
			fmt.Fprintf(&b, "\t\t\tsecret %s\n", c.ExtraSecret)
		}
		b.WriteString(c.Dedupe + c.Extra)
		fmt.Fprintf(&b, "\t\t}\n\t\treverse_proxy %s\n\t}\n", c.Upstream)
	}
	b.WriteString("}\n")
	return b.String()
}

// gateway is a caddy process.
type gateway struct {
	t      *testing.T
	cfg    gatewayConfig
	file   string
	cmd    *exec.Cmd
	logs   *os.File
	exited chan struct{}
}

func startGateway(t *testing.T, cfg gatewayConfig) *gateway {
	t.Helper()
	if cfg.Port == 0 {
		cfg.Port = testutil.FreePort()
	}
	if cfg.AdminPort == 0 {
		cfg.AdminPort = testutil.FreePort()
	}
	dir := t.TempDir()
	g := &gateway{t: t, cfg: cfg, file: filepath.Join(dir, "Caddyfile")}
	g.logs, _ = os.Create(filepath.Join(dir, "caddy.log"))
	os.WriteFile(g.file, []byte(cfg.caddyfile()), 0o644)
	g.start()
	t.Cleanup(g.stop)
	return g
}

func (g *gateway) url(provider string) string {
	return fmt.Sprintf("http://127.0.0.1:%d/%s", g.cfg.Port, provider)
}

func (g *gateway) start() {
	g.cmd = exec.Command(caddyBin, "run", "--adapter", "caddyfile", "--config", g.file)
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.exited = make(chan struct{})
	go func() { g.cmd.Wait(); close(g.exited) }()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.cfg.Port)); err == nil {
			c.Close()
			return
		}
		if i == 300 {
			log, _ := os.ReadFile(g.logs.Name())
			g.t.Fatalf("gateway did not start:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the gateway with SIGKILL: no graceful shutdown, no cleanup.
func (g *gateway) kill() {
	g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.exited
}

func (g *gateway) stop() {
	if g.cmd != nil && g.cmd.Process != nil {
		g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(15 * time.Second):
			g.cmd.Process.Kill()
		}
	}
}

// reload rewrites the Caddyfile and runs `caddy reload`, as an operator would.
func (g *gateway) reload(cfg gatewayConfig) {
	g.t.Helper()
	cfg.Port, cfg.AdminPort = g.cfg.Port, g.cfg.AdminPort
	os.WriteFile(g.file, []byte(cfg.caddyfile()), 0o644)
	out, err := exec.Command(caddyBin, "reload", "--adapter", "caddyfile", "--config", g.file,
		"--address", fmt.Sprintf("localhost:%d", cfg.AdminPort)).CombinedOutput()
	if err != nil {
		g.t.Fatalf("caddy reload: %v\n%s", err, out)
	}
}

// metric reads one value from the gateway's /metrics.
func (g *gateway) metric(name string) float64 {
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", g.cfg.AdminPort))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// peakRSS is the process's high-water resident set, in MB.
func (g *gateway) peakRSS() float64 { return testutil.PeakRSS(g.cmd.Process.Pid) }

func startUpstream(t *testing.T) (*sim.Upstream, string) {
	u := sim.NewUpstream()
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	return u, srv.URL
}

// verdict prints the drill's figures and checks its pass conditions.
func verdict(t *testing.T, name string, r sim.Report, o sim.Outcome, checks map[string]bool) {
	t.Helper()
	line := fmt.Sprintf("drill %-22s sent %6d  delivered %6d  lost %d (at the gateway %d, refused by the upstream at every attempt %d)  doubled %d  failed requests %d of %d  statuses %v",
		name, o.Sent, o.Delivered, o.Lost, o.LostAtGateway, o.RefusedByUpstream, o.Doubled, r.Failed, r.Attempts, r.Statuses)
	fmt.Fprintln(os.Stderr, line)
	t.Log(line)
	for msg, n := range r.Errors {
		t.Logf("transport error (%d times): %s", n, msg)
	}
	pass := true
	for what, ok := range checks {
		if !ok {
			t.Errorf("FAIL: %s", what)
			pass = false
		}
	}
	if pass {
		fmt.Fprintf(os.Stderr, "drill %-22s PASS\n", name)
	}
}

var stderr = os.Stderr

var _ = io.Discard
