package archive_test

import (
	"slices"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/archive"
	"github.com/wagate/caddy-webhook/internal/testutil"
)

// writeRefused writes what the gateway writes for a verified request that
// the claim kept from the upstream: the request record, then an outcome
// with the claim's verdict (written the old way, the verdict on the
// request record itself).
func writeRefused(t *testing.T, w *archive.Writer, id, verdict string, old bool) {
	t.Helper()
	q := verified(id, `{"a":1}`)
	if old {
		q.Verdict = verdict
		if _, err := w.WriteRequest(q); err != nil {
			t.Fatal(err)
		}
		return
	}
	ref, err := w.WriteRequest(q)
	if err != nil {
		t.Fatal(err)
	}
	o := &archive.Outcome{Verdict: verdict, Status: 409, Settled: archive.None}
	switch verdict {
	case archive.Duplicate:
		o.Status, o.Settled = 200, archive.Done
	case archive.StoreError:
		o.Status = 503
	}
	if err := w.WriteOutcome(ref, o); err != nil {
		t.Fatal(err)
	}
}

// TestPassedRequestsAreNotReplayed: a retry the claim answered in_flight
// or as a duplicate passed its event to the delivery that holds it, whose
// own record is the one to replay; a retry refused for a store error was
// delivered by nobody, and is replayed. The same traffic written the old
// way (verdict on the request) selects the same events, and a file
// deleted by retention reports the same events undelivered.
func TestPassedRequestsAreNotReplayed(t *testing.T) {
	day := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	write := func(old bool) (string, *archive.Writer, *clock) {
		dir := t.TempDir()
		c := testutil.NewClock(day)
		w := open(t, dir, "wazera", c, archive.Limits{Retention: time.Hour})
		writeAt(t, w, c, day, "delivered", 200)
		c.Set(day.Add(2 * time.Minute))
		writeRefused(t, w, "delivered", archive.Duplicate, old)     // a retry of it, later
		writeRefused(t, w, "elsewhere", archive.InFlight, old)      // held by a gateway with another archive
		writeRefused(t, w, "store-failed", archive.StoreError, old) // never claimed: this record is the event's
		return dir, w, c
	}
	ids := func(dir string, f archive.Filter, all bool) []string {
		t.Helper()
		recs, err := (&archive.Reader{Dir: dir}).Select(f, all)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, r.EventID)
		}
		return out
	}
	since := archive.Filter{Since: day.Add(time.Minute)} // only the retries
	for _, old := range []bool{true, false} {
		dir, w, c := write(old)
		if got := ids(dir, archive.Filter{}, false); !slices.Equal(got, []string{"store-failed"}) {
			t.Errorf("old=%v: default selects %v, want [store-failed]", old, got)
		}
		if got := ids(dir, since, true); !slices.Equal(got, []string{"store-failed"}) {
			t.Errorf("old=%v: --all --since selects %v, want [store-failed]: the others' retries passed them on", old, got)
		}
		if got := ids(dir, archive.Filter{}, true); !slices.Equal(got, []string{"delivered", "store-failed"}) {
			t.Errorf("old=%v: --all selects %v, want [delivered store-failed]", old, got)
		}
		c.Set(day.Add(3 * time.Hour))
		gone, err := w.Clean()
		if err != nil || len(gone) != 1 || !slices.Equal(gone[0].Undelivered, []string{"store-failed"}) {
			t.Errorf("old=%v: Clean %+v %v, want one file with store-failed undelivered", old, gone, err)
		}
	}
}
