package archive_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/archive"
)

// BenchmarkWritePair measures what the archive adds to one forwarded 1 KB
// webhook: its request record before forwarding and its outcome after,
// from parallel handlers (one a core, and 32 a core as under a closed
// load of 32 concurrent requests), with each sync mode.
//
//	go test ./archive -run '^$' -bench WritePair -benchmem
func BenchmarkWritePair(b *testing.B) {
	body := []byte(`{"event":"message.received","data":{"text":"` + strings.Repeat("x", 1024-48) + `"}}`)
	for _, bench := range []struct {
		mode string
		par  int
	}{{archive.SyncInterval, 1}, {archive.SyncInterval, 32}, {archive.SyncAlways, 1}, {archive.SyncAlways, 32}} {
		mode := bench.mode
		b.Run(fmt.Sprintf("sync=%s/par=%d", mode, bench.par), func(b *testing.B) {
			w, err := archive.Open(archive.Options{Dir: b.TempDir(), Provider: "wazera", Limits: archive.Limits{Sync: mode}})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.SetParallelism(bench.par)
			b.RunParallel(func(pb *testing.PB) {
				q := &archive.Request{
					Route: "example.com", Remote: "203.0.113.7:50312", Method: "POST", Host: "example.com", Path: "/wazera",
					Header: http.Header{
						"Content-Type": {"application/json"}, "User-Agent": {"Wazera-Webhooks/2.1"},
						"X-Wazera-Signature": {"sha256=8f3a0c1d2e4b5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"},
						"X-Wazera-Event-Id":  {"evt_01HZX3Q4J5K6M7N8P9Q0R1S2T3"}, "Content-Length": {"1024"},
					},
					Body: body, BodyJSON: true, Verdict: archive.Verified, EventID: "evt_01HZX3Q4J5K6M7N8P9Q0R1S2T3",
					EventType: "message.received", Format: "cloudevents",
					CloudEventHead: []byte(`{"specversion":"1.0","id":"evt_01HZX3Q4J5K6M7N8P9Q0R1S2T3","source":"wazera","type":"message.received","datacontenttype":"application/json","providerevent":"message.received","data":{"payload":`),
				}
				o := &archive.Outcome{Status: 200, Duration: 3 * time.Millisecond, Settled: archive.Committed}
				for pb.Next() {
					ref, err := w.WriteRequest(q)
					if err != nil {
						b.Fatal(err)
					}
					if err := w.WriteOutcome(ref, o); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
