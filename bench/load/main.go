// Command load measures what the webhook gateway costs per request
// compared with the proxy alone: one Caddy process, the same upstream
// behind a bare reverse_proxy route (A) and a webhook_verify route (B),
// alternating A B A B rounds of the same load. It reports throughput,
// p50/p99/p99.9 latency, CPU seconds per 1,000 requests and peak RSS of
// the Caddy process, and the ratio gateway/bare.
//
//	go run ./bench/load                        one row: zavu, 1KB, 32 concurrent, memory, cloudevents
//	go run ./bench/load -body 1MB -c 256 -buffered
//	go run ./bench/load -matrix                the whole matrix (make load)
//	go run ./bench/load -pin -dedupe memory,redis
//	                                           the pinned method (below)
//
// With -pin, Caddy runs on core 1 and everything else (this
// tool, the upstream, redis-server) on core 0, so Caddy's CPU per request
// is its own. After warm-up rounds, rounds of -n requests alternate bare,
// gateway, bare, gateway…; the tool reports the median of the per-round
// ratios (throughput and Caddy CPU per request), p50/p99 of each side, and
// redis-server's CPU per request separately.
//
// Every request is a unique, correctly signed event, so the dedupe store
// never drops one. With -buffered a third route (C), reverse_proxy with
// request_buffers, holds each body once as the gateway must (it cannot
// forward a byte before the signature is checked): the fair baseline for
// memory with large bodies.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wagate/caddy-webhook/bench/sim"
	"github.com/wagate/caddy-webhook/internal/redistest"
	"github.com/wagate/caddy-webhook/internal/testutil"
)

var (
	caddyPath = flag.String("caddy", "", "Caddy binary with the module; default: build ./cmd/caddy")
	provider  = flag.String("provider", "zavu", "provider whose events are sent")
	bodies    = flag.String("body", "1KB", "body sizes, comma-separated: 1KB, 64KB, 1MB")
	conc      = flag.String("c", "32", "concurrencies, comma-separated (closed loop)")
	rate      = flag.Float64("rate", 0, "fixed rate in requests per second instead of a closed loop")
	dedupes   = flag.String("dedupe", "memory", "dedupe stores, comma-separated: memory, redis, off")
	formats   = flag.String("format", "cloudevents", "formats, comma-separated: cloudevents, raw")
	duration  = flag.Duration("duration", 3*time.Second, "length of each round")
	rounds    = flag.Int("rounds", 2, "rounds per route (A B A B is 2)")
	buffered  = flag.Bool("buffered", false, "add route C: reverse_proxy with request_buffers; with -pin, route D, and the ratio D/A: what reading the whole body before forwarding costs, with no check")
	only      = flag.String("only", "", "run one route alone (bare, gw or buffered), for profiling")
	matrix    = flag.Bool("matrix", false, "run the whole matrix: dedupe memory,redis x body 1KB,64KB,1MB x c 1,32,256 x format cloudevents,raw")
	pin       = flag.Bool("pin", false, "the pinned method: Caddy on core 1, the rest on core 0, rounds of -n requests; defaults -provider wazera -body 800B -c 32 -rounds 5")
	perRound  = flag.Int("n", 10000, "requests per round with -pin")
	archived  = flag.Bool("archive", false, "with -pin: a third route C, the gateway with archive on (sync interval), and the ratio C/B: what the archive costs")
	proxyBuf  = flag.String("proxy-buffers", "", "request_buffers for the reverse_proxy of the gateway routes (B and C), e.g. 64KiB, as the README recommends; default: none, the issue's method")
	profile   = flag.String("cpuprofile", "", "with -pin: after the rounds, write a 10 s CPU profile of Caddy under gateway load to this file (go tool pprof -top FILE)")
)

const secret = "whsec_bG9hZC10b29sLXNlY3JldA=="

// redisPid is the redis-server's process, whose CPU is reported beside Caddy's.
var redisPid int

func main() {
	flag.Parse()
	if *pin {
		pinSelf()
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]*string{"provider": provider, "body": bodies, "c": conc} {
			if !set[name] {
				*v = map[string]string{"provider": "wazera", "body": "800B", "c": "32"}[name]
			}
		}
		if !set["rounds"] {
			*rounds = 5
		}
	}
	if *matrix {
		*dedupes, *bodies, *conc, *formats = "memory,redis", "1KB,64KB,1MB", "1,32,256", "cloudevents,raw"
	}
	if *profile != "" { // fail here, not after Caddy started (log.Fatal skips its stop)
		probe := strings.TrimSuffix(*profile, filepath.Ext(*profile)) + "-probe"
		if err := os.WriteFile(probe, nil, 0o644); err != nil {
			log.Fatalf("-cpuprofile: %v", err)
		}
		os.Remove(probe)
	}
	bin := *caddyPath
	tmp, _ := os.MkdirTemp("", "load-")
	defer os.RemoveAll(tmp)
	if bin == "" {
		var err error
		if bin, err = testutil.BuildCaddy(".", tmp); err != nil {
			log.Fatalf("%v (run from the repository root)", err)
		}
	}

	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	})}
	ul, _ := net.Listen("tcp", "127.0.0.1:0")
	go up.Serve(ul)

	var redisAddr string
	if strings.Contains(*dedupes, "redis") {
		rs, err := redistest.Start()
		if err != nil {
			log.Fatal(err)
		}
		defer rs.Close()
		redisAddr = rs.Addr
		redisPid = rs.Pid()
	}

	g := startCaddy(bin, tmp)
	defer g.stop()

	if *pin {
		gw := "the gateway's reverse_proxy streams the body"
		if *proxyBuf != "" {
			gw = "the gateway's reverse_proxy has request_buffers " + *proxyBuf
		}
		fmt.Printf("pinned: Caddy on core 1, load, upstream and redis-server on core 0; provider %s, body %s, %s concurrent, rounds of %d requests, %d per route, alternating; %s\n\n",
			*provider, *bodies, *conc, *perRound, *rounds, gw)
		fmt.Println("| dedupe | format | body | conc | throughput B/A (median of rounds) | Caddy CPU per request B/A (median) | p50 ms A / B | p99 ms A / B | p99 B/A | req/s A / B | Caddy CPU µs/req A / B | redis-server CPU µs/req B | errors |")
		fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		eachRow(func(dd, format, body string, c int) { pinnedRow(g, ul.Addr().String(), redisAddr, dd, format, body, c) })
		return
	}
	fmt.Printf("provider %s, rounds of %s, %d per route, alternating; CPU and RSS of the Caddy process\n\n", *provider, *duration, *rounds)
	fmt.Println("| dedupe | format | body | conc | route | req/s | p50 ms | p99 ms | p99.9 ms | CPU s/1k req | redis-server CPU s/1k req | peak RSS MB | errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	eachRow(func(dd, format, body string, c int) { row(g, ul.Addr().String(), redisAddr, dd, format, body, c) })
}

// eachRow calls run for every combination of the -dedupe, -format, -body
// and -c lists.
func eachRow(run func(dedupe, format, body string, conc int)) {
	for _, dd := range split(*dedupes) {
		for _, format := range split(*formats) {
			for _, body := range split(*bodies) {
				for _, c := range split(*conc) {
					n, _ := strconv.Atoi(c)
					run(dd, format, body, n)
				}
			}
		}
	}
}

func split(s string) []string { return strings.Split(s, ",") }

func sizeOf(s string) int {
	u := strings.ToUpper(s)
	for _, unit := range []struct {
		suffix string
		size   int
	}{{"KB", 1 << 10}, {"MB", 1 << 20}, {"B", 1}} {
		if num, ok := strings.CutSuffix(u, unit.suffix); ok {
			if n, err := strconv.Atoi(num); err == nil && n > 0 {
				return n * unit.size
			}
		}
	}
	log.Fatalf("body size %q: use a size such as 800B, 1KB, 64KB or 1MB", s)
	return 0
}

// result of one route over its rounds
type result struct {
	requests, errors int
	elapsed          time.Duration
	lat              []time.Duration
	cpu              float64 // seconds
	redisCPU         float64 // seconds, of redis-server
	rss              float64 // MB, highest of its rounds
	reads, writes    int64   // Caddy's read and write system calls
}

func (r *result) add(o result) {
	r.requests += o.requests
	r.errors += o.errors
	r.elapsed += o.elapsed
	r.lat = append(r.lat, o.lat...)
	r.cpu += o.cpu
	r.redisCPU += o.redisCPU
	r.rss = max(r.rss, o.rss)
	r.reads += o.reads
	r.writes += o.writes
}

// calls is Caddy's read and write system calls per request.
func (r *result) calls() string {
	n := float64(max(r.requests, 1))
	return fmt.Sprintf("%.2f / %.2f", float64(r.reads)/n, float64(r.writes)/n)
}

func (r *result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r *result) pct(p float64) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	return float64(r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))].Microseconds()) / 1000
}

// loadRoutes loads the config of one row: the bare, buffered and gateway
// routes to one upstream.
func loadRoutes(g *caddyProc, upstream, redisAddr, dd, format string) {
	dedupe := "off"
	switch dd {
	case "memory":
		dedupe = "memory {\n\t\t\t\tkey_prefix load" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":\n\t\t\t}"
	case "redis":
		dedupe = "redis {\n\t\t\t\taddress " + redisAddr + "\n\t\t\t\tkey_prefix load" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":\n\t\t\t}"
	}
	proxy := upstream
	if *proxyBuf != "" {
		proxy += " {\n\t\t\trequest_buffers " + *proxyBuf + "\n\t\t}"
	}
	archiveRoute := ""
	if *archived {
		dir, _ := os.MkdirTemp("", "load-archive-")
		archiveRoute = fmt.Sprintf(`
	handle /gwa {
		webhook_verify %s {
			secret %s
			max_body 2MiB
			format %s
			dedupe %s
			archive %s
		}
		reverse_proxy %s
	}`, *provider, secret, format, dedupe, dir, proxy)
	}
	g.load(fmt.Sprintf(`{
	admin localhost:%d
	log {
		level ERROR
	}
}
http://127.0.0.1:%d {
	handle /bare {
		reverse_proxy %s
	}
	handle /buffered {
		reverse_proxy %s {
			request_buffers 2MiB
		}
	}
	handle /gw {
		webhook_verify %s {
			secret %s
			max_body 2MiB
			format %s
			dedupe %s
		}
		reverse_proxy %s
	}%s
}
`, g.admin, g.port, upstream, upstream, *provider, secret, format, dedupe, proxy, archiveRoute))
}

func row(g *caddyProc, upstream, redisAddr, dd, format, body string, c int) {
	loadRoutes(g, upstream, redisAddr, dd, format)
	src, err := sim.NewSource(*provider, secret, sizeOf(body))
	if err != nil {
		log.Fatal(err)
	}
	routes := []string{"bare", "gw"}
	if *buffered {
		routes = append(routes, "buffered")
	}
	if *only != "" {
		routes = []string{*only}
		for i := 0; i < *rounds; i++ {
			r := runRound(g, src, *only, c, *duration, 0)
			fmt.Printf("| %s | %s | %s | %d | %s alone | %.0f | %.2f | %.2f | %.2f | %.3f | %.3f | %.0f | %d |\n",
				dd, format, body, c, *only, r.rps(), r.pct(.50), r.pct(.99), r.pct(.999), r.cpu/float64(r.requests)*1000, r.redisCPU/float64(r.requests)*1000, r.rss, r.errors)
		}
		return
	}
	results := map[string]*result{}
	for _, r := range routes {
		results[r] = &result{}
	}
	// warm-up: connections, pools, the JIT-free but cache-hungry first requests
	runRound(g, src, "gw", c, time.Second/2, 0)
	runRound(g, src, "bare", c, time.Second/2, 0)
	for i := 0; i < *rounds; i++ {
		for _, r := range routes {
			results[r].add(runRound(g, src, r, c, *duration, 0))
		}
	}
	name := map[string]string{"bare": "A bare", "gw": "B gateway", "buffered": "C bare, buffered"}
	for _, r := range routes {
		x := results[r]
		fmt.Printf("| %s | %s | %s | %d | %s | %.0f | %.2f | %.2f | %.2f | %.3f | %.3f | %.0f | %d |\n",
			dd, format, body, c, name[r], x.rps(), x.pct(.50), x.pct(.99), x.pct(.999), x.cpu/float64(x.requests)*1000, x.redisCPU/float64(x.requests)*1000, x.rss, x.errors)
	}
	a, b := results["bare"], results["gw"]
	fmt.Printf("| %s | %s | %s | %d | **B/A** | **%.2f** | %.2f | **%.2f** | %.2f | %.2f | | **%.2f** | |\n",
		dd, format, body, c, b.rps()/a.rps(), b.pct(.5)/a.pct(.5), b.pct(.99)/a.pct(.99), b.pct(.999)/a.pct(.999),
		(b.cpu/float64(b.requests))/(a.cpu/float64(a.requests)), b.rss/a.rss)
	if *buffered {
		cc := results["buffered"]
		fmt.Printf("| %s | %s | %s | %d | **B/C** | **%.2f** | | **%.2f** | | | | **%.2f** | |\n",
			dd, format, body, c, b.rps()/cc.rps(), b.pct(.99)/cc.pct(.99), b.rss/cc.rss)
	}
}

// pinnedRow runs the pinned method for one configuration: warm-up, then
// -rounds pairs of bare and gateway rounds of -n requests each.
func pinnedRow(g *caddyProc, upstream, redisAddr, dd, format, body string, c int) {
	loadRoutes(g, upstream, redisAddr, dd, format)
	src, err := sim.NewSource(*provider, secret, sizeOf(body))
	if err != nil {
		log.Fatal(err)
	}
	for range 2 { // warm-up: connections, pools, caches
		runRound(g, src, "bare", c, 0, *perRound/4)
		runRound(g, src, "gw", c, 0, *perRound/4)
	}
	var a, b result
	var tput, cpu []float64
	// the optional routes, each measured in every round against the bare
	// route (A) or the gateway (B)
	var extras []*extraRoute
	if *archived {
		extras = append(extras, &extraRoute{route: "gwa", label: "archive", letter: "C", base: "B"})
	}
	if *buffered {
		extras = append(extras, &extraRoute{route: "buffered", label: "buffered", letter: "D", base: "A"})
	}
	ratio := func(x, y result) (float64, float64) {
		return x.rps() / y.rps(), (x.cpu / float64(x.requests)) / (y.cpu / float64(y.requests))
	}
	for i := 0; i < *rounds; i++ {
		ra := runRound(g, src, "bare", c, 0, *perRound)
		rb := runRound(g, src, "gw", c, 0, *perRound)
		a.add(ra)
		b.add(rb)
		t, u := ratio(rb, ra)
		tput, cpu = append(tput, t), append(cpu, u)
		for _, x := range extras {
			r := runRound(g, src, x.route, c, 0, *perRound)
			x.sum.add(r)
			against := ra
			if x.base == "B" {
				against = rb
			}
			t, u := ratio(r, against)
			x.tput, x.cpu = append(x.tput, t), append(x.cpu, u)
		}
	}
	if *profile != "" {
		profileGateway(g, src, c, dd)
	}
	perReq := func(x result, cpu float64) float64 { return cpu / float64(x.requests) * 1e6 }
	fmt.Printf("| %s | %s | %s | %d | **%.3f** (%s) | **%.3f** (%s) | %.2f / %.2f | %.2f / %.2f | **%.2f** | %.0f / %.0f | %.1f / %.1f | %.1f | %d / %d |\n",
		dd, format, body, c, median(tput), spread(tput), median(cpu), spread(cpu),
		a.pct(.50), b.pct(.50), a.pct(.99), b.pct(.99), b.pct(.99)/a.pct(.99),
		a.rps(), b.rps(), perReq(a, a.cpu), perReq(b, b.cpu), perReq(b, b.redisCPU), a.errors, b.errors)
	calls := fmt.Sprintf("Caddy's read / write system calls per request (%s): A %s, B %s", dd, a.calls(), b.calls())
	for _, x := range extras {
		calls += ", " + x.letter + " " + x.sum.calls()
	}
	fmt.Fprintln(os.Stderr, calls)
	for _, x := range extras {
		r := x.letter + "/" + x.base
		fmt.Printf("| %s | %s | %s | %d | %s: **%s %.3f** (%s) | **%s %.3f** (%s) | p50 %s %.2f | p99 %s %.2f | | req/s %s %.0f | | | %d |\n",
			dd, format, body, c, x.label, r, median(x.tput), spread(x.tput), r, median(x.cpu), spread(x.cpu),
			x.letter, x.sum.pct(.50), x.letter, x.sum.pct(.99), x.letter, x.sum.rps(), x.sum.errors)
	}
}

// extraRoute is a route of the pinned method beyond A and B (C, the
// archive; D, a bare proxy with request_buffers), with its results and
// its per-round ratios to its base route.
type extraRoute struct {
	route, label string // its name in loadRoutes, and in its row
	letter, base string // its letter, and its base's: "A" or "B"
	sum          result
	tput, cpu    []float64
}

// profileGateway writes CPU and allocation profiles of Caddy taken while
// the gateway route, then the bare route, is under load: FILE-<dedupe>.gz
// and FILE-<dedupe>-bare.gz (and FILE-<dedupe>-archive.gz for route C with
// -archive, FILE-<dedupe>-buffered.gz for route D with -buffered), each
// with a FILE-…-allocs.gz beside it, and the request count of each, so
// that go tool pprof -diff_base shows what the gateway adds.
func profileGateway(g *caddyProc, src *sim.Source, c int, dd string) {
	routes := []string{"gw", "bare"}
	if *archived {
		routes = append(routes, "gwa")
	}
	if *buffered {
		routes = append(routes, "buffered")
	}
	fetch := func(path string, done chan<- []byte) {
		resp, err := http.Get(fmt.Sprintf("http://localhost:%d/debug/pprof/%s?seconds=10", g.admin, path))
		if err != nil {
			log.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- b
	}
	for _, route := range routes {
		cpu, allocs := make(chan []byte), make(chan []byte)
		go fetch("profile", cpu)
		go fetch("allocs", allocs)
		r := runRound(g, src, route, c, 11*time.Second, 0)
		suffix := "-" + dd
		switch route {
		case "bare":
			suffix += "-bare"
		case "gwa":
			suffix += "-archive"
		case "buffered":
			suffix += "-buffered"
		}
		base := strings.TrimSuffix(*profile, filepath.Ext(*profile)) + suffix
		if err := os.WriteFile(base+filepath.Ext(*profile), <-cpu, 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(base+"-allocs"+filepath.Ext(*profile), <-allocs, 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "CPU and allocation profiles of Caddy under %s load (%s, %d requests in 11 s): %s, %s\n",
			route, dd, r.requests, base+filepath.Ext(*profile), base+"-allocs"+filepath.Ext(*profile))
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread lists the per-round values, for the record.
func spread(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(parts, " ")
}

// pinSelf moves this tool (and so the upstream it serves and the
// redis-server it starts, which inherit it) to core 0.
func pinSelf() {
	if err := pinProcess(os.Getpid(), 0); err != nil {
		log.Fatalf("pinning to core 0: %v (the pinned method needs 2 cores)", err)
	}
}

// pinProcess sets the CPU affinity of every thread of pid to one core;
// threads created later inherit it from their creator.
func pinProcess(pid, core int) error {
	var set unix.CPUSet
	set.Set(core)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return err
		}
	}
	return nil
}

// runRound sends load to one route for d, or for n requests when n > 0,
// and measures the Caddy process.
func runRound(g *caddyProc, src *sim.Source, route string, c int, d time.Duration, n int) result {
	url := fmt.Sprintf("http://127.0.0.1:%d/%s", g.port, route)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: c + 8, DisableCompression: true}}
	defer client.CloseIdleConnections()
	g.resetPeak()
	cpu0 := g.cpu()
	r0, w0 := testutil.SysCalls(g.cmd.Process.Pid)
	rcpu0 := testutil.CPUSeconds(redisPid)
	ctx, cancel := context.WithCancel(context.Background())
	if n == 0 {
		ctx, cancel = context.WithTimeout(context.Background(), d)
	}
	defer cancel()
	var started atomic.Int64
	var mu sync.Mutex
	var res result
	var wg sync.WaitGroup
	var tick <-chan time.Time
	if *rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / *rate))
		defer t.Stop()
		tick = t.C
	}
	var inflight atomic.Int64
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			errs := 0
			for ctx.Err() == nil {
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						continue
					}
				}
				if n > 0 && started.Add(1) > int64(n) {
					cancel()
					continue
				}
				e := src.Quick()
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(e.Body))
				req.Header = e.Sign()
				inflight.Add(1)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				lat = append(lat, time.Since(t0))
				inflight.Add(-1)
				if err != nil {
					errs++
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.requests = len(res.lat)
	res.cpu = g.cpu() - cpu0
	r1, w1 := testutil.SysCalls(g.cmd.Process.Pid)
	res.reads, res.writes = r1-r0, w1-w0
	res.redisCPU = testutil.CPUSeconds(redisPid) - rcpu0
	res.rss = g.peakRSS()
	return res
}

// caddyProc is the Caddy process under test.
type caddyProc struct {
	cmd         *exec.Cmd
	port, admin int
}

func startCaddy(bin, dir string) *caddyProc {
	g := &caddyProc{port: testutil.FreePort(), admin: testutil.FreePort()}
	cfg := filepath.Join(dir, "Caddyfile")
	os.WriteFile(cfg, []byte(fmt.Sprintf("{\n\tadmin localhost:%d\n}\n", g.admin)), 0o644)
	g.cmd = exec.Command(bin, "run", "--adapter", "caddyfile", "--config", cfg)
	logf, _ := os.Create(filepath.Join(dir, "caddy.log"))
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	if err := g.cmd.Start(); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if resp, err := http.Get(fmt.Sprintf("http://localhost:%d/config/", g.admin)); err == nil {
			resp.Body.Close()
			if *pin {
				if err := pinProcess(g.cmd.Process.Pid, 1); err != nil {
					log.Fatalf("pinning Caddy to core 1: %v", err)
				}
			}
			return g
		}
		time.Sleep(20 * time.Millisecond)
	}
	log.Fatal("caddy did not start")
	return nil
}

func (g *caddyProc) load(caddyfile string) {
	resp, err := http.Post(fmt.Sprintf("http://localhost:%d/load", g.admin), "text/caddyfile", strings.NewReader(caddyfile))
	if err != nil {
		log.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		log.Fatalf("loading config: %s", b)
	}
	time.Sleep(200 * time.Millisecond)
}

func (g *caddyProc) stop() { g.cmd.Process.Kill(); g.cmd.Wait() }

func (g *caddyProc) cpu() float64     { return testutil.CPUSeconds(g.cmd.Process.Pid) }
func (g *caddyProc) resetPeak()       { testutil.ResetPeakRSS(g.cmd.Process.Pid) }
func (g *caddyProc) peakRSS() float64 { return testutil.PeakRSS(g.cmd.Process.Pid) }
