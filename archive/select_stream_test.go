package archive_test

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/archive"
	"github.com/wagate/caddy-webhook/internal/testutil"
)

// heapInUse returns the heap in use after a collection: what is live.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestEachHoldsOneRecord: a replay after a long outage selects every
// event of the archive; Each hands them over one at a time and drops
// each, so the live heap stays far below the bodies' total (Select, which
// returns them in one slice, holds all 128 MiB of them).
func TestEachHoldsOneRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads 128 MiB")
	}
	const events, size = 2048, 64 << 10
	dir := t.TempDir()
	c := testutil.NewClock(time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC))
	w := open(t, dir, "wazera", c, archive.Limits{})
	body := strings.Repeat("x", size)
	for i := range events {
		c.Add(2 * time.Second) // two hours' files
		ref, err := w.WriteRequest(verified(fmt.Sprint("evt_", i), body))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteOutcome(ref, &archive.Outcome{Status: 502}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	body = ""

	before := heapInUse()
	sel, err := (&archive.Reader{Dir: dir}).Plan(archive.Filter{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if sel.Len() != events {
		t.Fatalf("planned %d events, want %d", sel.Len(), events)
	}
	planned := heapInUse()
	var peak uint64
	var last time.Time
	n := 0
	accepted, gone, err := sel.Each(func(rec *archive.Record) error {
		if rec.EventID != fmt.Sprint("evt_", n) || len(rec.Body) != size || rec.Time.Before(last) {
			t.Fatalf("record %d: %s at %v, body %d bytes, after %v", n, rec.EventID, rec.Time, len(rec.Body), last)
		}
		last = rec.Time
		if n%250 == 0 || n == events-1 {
			peak = max(peak, heapInUse())
		}
		n++
		return nil
	})
	if err != nil || n != events || accepted != 0 || gone != 0 {
		t.Fatalf("handed %d events (accepted %d, gone %d, %v), want %d", n, accepted, gone, err, events)
	}
	t.Logf("bodies %d MiB; live heap: %.1f MiB before, %.1f MiB planned, %.1f MiB at most while handing out",
		events*size>>20, mib(before), mib(planned), mib(peak))
	if peak > 32<<20 {
		t.Errorf("live heap %.1f MiB while handing out %d MiB of bodies, want under 32 MiB", mib(peak), events*size>>20)
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

func TestPlanEach(t *testing.T) {
	dir := t.TempDir()
	base := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	c := testutil.NewClock(base)
	w := open(t, dir, "wazera", c, archive.Limits{})
	z := open(t, dir, "zavu", c, archive.Limits{})
	writeAt(t, w, c, at(0), "a", 500)
	writeAt(t, w, c, at(1), "b", 0)
	writeAt(t, w, c, at(2), "c", 502)
	writeAt(t, w, c, at(3), "a", 500)  // a retry: a second record of a
	writeAt(t, z, c, at(4), "a", 0)    // the same id, another provider
	writeAt(t, w, c, at(70), "c", 200) // accepted the next hour

	r := &archive.Reader{Dir: dir, Warn: func(file string, line int, msg string) {
		t.Errorf("warning: %s:%d: %s", file, line, msg)
	}}
	each := func(f archive.Filter, all bool) []string {
		t.Helper()
		sel, err := r.Plan(f, all)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		accepted, gone, err := sel.Each(func(rec *archive.Record) error {
			out = append(out, fmt.Sprintf("%s/%s@%d", rec.Provider, rec.EventID, int(rec.Time.Sub(base)/time.Minute)))
			return nil
		})
		if err != nil || accepted != 0 || gone != 0 || sel.Len() != 0 {
			t.Errorf("Each: accepted %d, gone %d, left %d, %v", accepted, gone, sel.Len(), err)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    archive.Filter
		all  bool
		want []string
	}{
		{"never accepted", archive.Filter{}, false, []string{"wazera/a@0", "wazera/b@1", "zavu/a@4"}},
		{"all", archive.Filter{}, true, []string{"wazera/a@0", "wazera/b@1", "wazera/c@2", "zavu/a@4"}},
		{"since: the first in range", archive.Filter{Since: at(2)}, false, []string{"wazera/a@3", "zavu/a@4"}},
		{"since, all", archive.Filter{Since: at(2)}, true, []string{"wazera/c@2", "wazera/a@3", "zavu/a@4"}},
		{"accepted out of range", archive.Filter{Until: at(60)}, false, []string{"wazera/a@0", "wazera/b@1", "zavu/a@4"}},
		{"provider and ids", archive.Filter{Provider: "wazera", EventIDs: []string{"a", "c"}}, false, []string{"wazera/a@0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := each(tc.f, tc.all); !slices.Equal(got, tc.want) {
				t.Errorf("handed %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEachAfterThePlan: what changes between Plan and Each. An
// acceptance that Each reads before the event (its writer's clock behind)
// skips the event, counted as accepted, unless all events were selected;
// a file deleted meanwhile, as by the gateway's retention, leaves its
// events gone; an event first archived after the Plan is not handed out.
func TestEachAfterThePlan(t *testing.T) {
	base := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	for _, tc := range []struct {
		all            bool
		want           []string
		accepted, gone int
	}{
		{false, []string{"a"}, 1, 1},
		{true, []string{"a", "b"}, 0, 1},
	} {
		dir := t.TempDir()
		c := testutil.NewClock(base)
		w := open(t, dir, "wazera", c, archive.Limits{})
		z := open(t, dir, "zavu", c, archive.Limits{})
		writeAt(t, w, c, at(10), "a", 500)
		writeAt(t, w, c, at(11), "b", 500)
		writeAt(t, z, c, at(12), "c", 500)
		r := &archive.Reader{Dir: dir}
		sel, err := r.Plan(archive.Filter{}, tc.all)
		if err != nil {
			t.Fatal(err)
		}
		if sel.Len() != 3 {
			t.Fatalf("all=%v: planned %d, want 3", tc.all, sel.Len())
		}

		// another gateway, its clock behind, answers a retry of b as a
		// duplicate
		w2 := open(t, dir, "wazera", testutil.NewClock(at(5)), archive.Limits{})
		if _, err := w2.WriteRequest(&archive.Request{Verdict: archive.Duplicate, EventID: "b", Secret: 0}); err != nil {
			t.Fatal(err)
		}
		writeAt(t, w, c, at(13), "d", 500)
		if err := os.RemoveAll(z.Dir()); err != nil {
			t.Fatal(err)
		}

		var got []string
		accepted, gone, err := sel.Each(func(rec *archive.Record) error {
			got = append(got, rec.EventID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) || accepted != tc.accepted || gone != tc.gone {
			t.Errorf("all=%v: handed %v, accepted %d, gone %d; want %v, %d, %d", tc.all, got, accepted, gone, tc.want, tc.accepted, tc.gone)
		}
		if a, g, _ := sel.Each(func(*archive.Record) error { t.Error("a spent selection handed a record"); return nil }); a+g != 0 {
			t.Errorf("a spent selection: accepted %d, gone %d", a, g)
		}
	}
}
