package dedupe_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/caddy-webhook/dedupe"
	"github.com/wagate/caddy-webhook/internal/testutil"
)

// benchKeys are distinct event keys, built before timing so that the
// benchmarks measure the store and not the key building.
func benchKeys(n int) []dedupe.Key {
	ks := make([]dedupe.Key, n)
	for i := range ks {
		ks[i] = dedupe.Key{Provider: "wazapin", ID: fmt.Sprintf("msg_%024d", i)}
	}
	return ks
}

// latencies records every 16th operation and reports p50 and p99.
type latencies struct{ d []time.Duration }

func (l *latencies) time(i int, op func()) {
	if i%16 != 0 {
		op()
		return
	}
	start := time.Now()
	op()
	l.d = append(l.d, time.Since(start))
}

func (l *latencies) report(b *testing.B) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	b.ReportMetric(float64(l.d[len(l.d)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(l.d[len(l.d)*99/100].Nanoseconds()), "p99-ns")
}

// fullMemory returns a memory store of 1<<18 entries, filled to capacity
// with the first keys, so that the benchmarks run at steady state.
func fullMemory(keys []dedupe.Key) *dedupe.Memory {
	ctx := context.Background()
	m := dedupe.NewMemory(dedupe.MemoryOptions{MaxEntries: 1 << 18})
	for _, k := range keys[:1<<18] {
		c, _ := m.Claim(ctx, k, time.Minute)
		m.Commit(ctx, c, time.Hour)
	}
	return m
}

// BenchmarkMemoryClaimCommit: one claim and one commit of a new event per
// op, at steady state: the store is full and evicts as it inserts.
func BenchmarkMemoryClaimCommit(b *testing.B) {
	ctx := context.Background()
	keys := benchKeys(1 << 20)
	m := fullMemory(keys)
	b.ReportAllocs()
	var lat latencies
	lat.d = make([]time.Duration, 0, b.N/16+1)
	i := 0
	for b.Loop() {
		k := keys[i&(len(keys)-1)]
		lat.time(i, func() {
			c, _ := m.Claim(ctx, k, time.Minute)
			m.Commit(ctx, c, time.Hour)
		})
		i++
	}
	lat.report(b)
}

// BenchmarkMemoryClaimCommitParallel: the same from every core at once.
func BenchmarkMemoryClaimCommitParallel(b *testing.B) {
	ctx := context.Background()
	keys := benchKeys(1 << 20)
	m := fullMemory(keys)
	b.ReportAllocs()
	b.ResetTimer() // the keys and the fill are not the store's work
	b.RunParallel(func(pb *testing.PB) {
		i := int(time.Now().UnixNano())
		for pb.Next() {
			k := keys[i&(len(keys)-1)]
			c, _ := m.Claim(ctx, k, time.Minute)
			m.Commit(ctx, c, time.Hour)
			i++
		}
	})
}

// BenchmarkMemoryFootprint reports the heap held per entry at capacity.
func BenchmarkMemoryFootprint(b *testing.B) {
	ctx := context.Background()
	const n = 1 << 20
	keys := benchKeys(n)
	for range b.N { // run it with -benchtime 1x: each round inserts a million keys
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m := dedupe.NewMemory(dedupe.MemoryOptions{MaxEntries: n})
		for _, k := range keys {
			c, _ := m.Claim(ctx, k, time.Hour)
			m.Commit(ctx, c, time.Hour)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/entry")
		runtime.KeepAlive(m)
	}
}

// BenchmarkRedis compares, on the same server and in the same run, a
// claim+commit (two round trips) with two plain SETs through the same
// client, sequentially (latency) and from 32 goroutines (throughput).
func BenchmarkRedis(b *testing.B) {
	for _, target := range []struct {
		name  string
		addrs []string
	}{{"single", []string{single.Addr}}, {"cluster", cluster.Addrs()}} {
		client := newClient(b, &redis.UniversalOptions{Addrs: target.addrs, PoolSize: 64})
		ctx := context.Background()
		keys := benchKeys(1 << 20)
		var round atomic.Int64 // every round gets a fresh prefix...
		var next atomic.Int64  // ...and every op a key of its own: claims must win
		var s *dedupe.Redis    // the store of the current round
		ops := map[string]func(k dedupe.Key){
			"claim+commit": func(k dedupe.Key) {
				c, err := s.Claim(ctx, k, time.Minute)
				if err != nil || c.Outcome != dedupe.Claimed {
					b.Fatal(c.Outcome, err)
				}
				if err := s.Commit(ctx, c, time.Hour); err != nil {
					b.Fatal(err)
				}
			},
			"2xSET": func(k dedupe.Key) {
				key := dedupe.RedisKey("benchset:"+strconv.FormatInt(round.Load(), 10)+":", k)
				if err := client.Set(ctx, key, "0123456789abcdef0123456789abcdef", time.Minute).Err(); err != nil {
					b.Fatal(err)
				}
				if err := client.Set(ctx, key, "done", time.Hour).Err(); err != nil {
					b.Fatal(err)
				}
			},
		}
		for _, name := range []string{"2xSET", "claim+commit", "2xSET", "claim+commit"} { // A B A B
			op := ops[name]
			newRound := func() {
				if s != nil {
					s.Close()
				}
				s = dedupe.NewRedis(client, "bench:"+strconv.FormatInt(round.Add(1), 10)+":", time.Second)
			}
			b.Run(target.name+"/seq/"+name, func(b *testing.B) {
				newRound()
				var lat latencies
				for i := 0; b.Loop(); i++ {
					k := keys[int(next.Add(1))&(len(keys)-1)]
					lat.time(i, func() { op(k) })
				}
				lat.report(b)
			})
			b.Run(target.name+"/par32/"+name, func(b *testing.B) {
				newRound()
				b.SetParallelism(16) // 16 x GOMAXPROCS(2) = 32 goroutines
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						op(keys[int(next.Add(1))&(len(keys)-1)])
					}
				})
			})
		}
	}
}

// BenchmarkRedisBenchmarkTool runs redis-benchmark against the same server
// for reference: b.N plain SETs, one client and 32 clients, no pipelining.
func BenchmarkRedisBenchmarkTool(b *testing.B) {
	port := single.Addr[strings.LastIndexByte(single.Addr, ':')+1:]
	rps := regexp.MustCompile(`([0-9.]+) requests per second`)
	for _, clients := range []string{"1", "32"} {
		b.Run("set/c"+clients, func(b *testing.B) {
			{
				out, err := exec.Command("redis-benchmark", "-h", "127.0.0.1", "-p", port, "-t", "set", "-P", "1",
					"-c", clients, "-n", strconv.Itoa(max(b.N, 1000)), "-q").CombinedOutput()
				if err != nil {
					b.Fatalf("redis-benchmark: %v: %s", err, out)
				}
				m := rps.FindSubmatch(out)
				if m == nil {
					b.Fatalf("no rate in %q", out)
				}
				v, _ := strconv.ParseFloat(string(m[1]), 64)
				b.ReportMetric(v, "SET/s")
				b.ReportMetric(1e9/v, "ns/op") // the tool's own figure, not this process's time
			}
		})
	}
}

// BenchmarkRedisCPU reports this process's CPU per operation (cpu-ns/op,
// getrusage: the client's own work, system calls included) beside the
// wall time, single server:
//   - pipelined/K/parP: P goroutines each send K claim-shaped SETs (NX,
//     GET) per go-redis pipeline; an op is one command. No hand-offs and
//     no waiting callers: what go-redis itself costs a command at that
//     batch size, the floor under any store built on it. With P = 4 the
//     core does not idle between replies.
//   - store/par32: 32 goroutines, each op a claim and a commit through
//     the store, as the gateway's requests make them.
//
// Run it with the client on one core and redis-server on the other, as
// the pinned load does (see BENCHMARKS.md), so that CPU is the client's.
func BenchmarkRedisCPU(b *testing.B) {
	client := newClient(b, &redis.UniversalOptions{Addrs: []string{single.Addr}, PoolSize: 64})
	ctx := context.Background()
	keys := benchKeys(1 << 20)
	var next atomic.Int64
	for _, k := range []int{1, 6, 16} {
		for _, par := range []int{1, 4} {
			b.Run(fmt.Sprintf("pipelined/%d/par%d", k, par), func(b *testing.B) {
				prefix := uniquePrefix()
				args := redis.SetArgs{Mode: "NX", TTL: time.Minute, Get: true}
				var sent atomic.Int64
				cpu := testutil.StartCPU(b)
				b.SetParallelism(max(1, par/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					names := make([]string, 0, k)
					// pb.Next counts commands: send K of them per pipeline.
					for pb.Next() {
						names = append(names, dedupe.RedisKey(prefix, keys[int(next.Add(1))&(len(keys)-1)]))
						if len(names) < k {
							continue
						}
						cmds, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
							for _, n := range names {
								p.SetArgs(ctx, n, "0123456789abcdef0123456789abcdef", args)
							}
							return nil
						})
						if err != nil && err != redis.Nil { // Pipelined returns the first command's error
							b.Error(err)
							return
						}
						for _, c := range cmds {
							if err := c.Err(); err != redis.Nil { // NX and GET on a new key: no previous value
								b.Error("a new key was taken:", err)
								return
							}
						}
						sent.Add(int64(len(cmds)))
						names = names[:0]
					}
				})
				cpu.Report()
				if sent.Load() < int64(b.N)-int64(k*par) {
					b.Fatalf("%d of %d commands sent", sent.Load(), b.N)
				}
			})
		}
	}
	b.Run("store/par32/claim+commit", func(b *testing.B) {
		s := dedupe.NewRedis(client, uniquePrefix(), time.Second)
		defer s.Close()
		b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
		cpu := testutil.StartCPU(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := keys[int(next.Add(1))&(len(keys)-1)]
				c, err := s.Claim(ctx, k, time.Minute)
				if err != nil || c.Outcome != dedupe.Claimed {
					b.Fatal(c.Outcome, err)
				}
				if err := s.Commit(ctx, c, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
		cpu.Report()
	})
}
