package archive

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/internal/testutil"
)

func groupRecords(t *testing.T, dir string) (ids map[string]int) {
	t.Helper()
	ids = map[string]int{}
	err := (&Reader{Dir: dir, Warn: func(f string, l int, m string) { t.Errorf("%s:%d: %s", f, l, m) }}).
		Scan(Filter{}, func(r *Record) error { ids[r.ID]++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestGroupWriteError: a write(2) that fails fails every record of
// its group, returns to all writers (no deadlock), leaves nothing in the
// file, and the writer goes on once the file is writable again: the
// records in the files are exactly those whose write returned nil, less
// the outcomes that returned before their group failed and were reported
// to OnLost. (With
// SyncAlways a record can be written and its fsync then fail, so that the
// caller is told it failed: it is in the file, and on_store_error applies.
// That is why this runs with SyncInterval.)
func TestGroupWriteError(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	dir := t.TempDir()
	c := testutil.NewClock(time.Date(2026, 5, 1, 13, 59, 59, 0, time.UTC))
	var failed, good, lost atomic.Int64
	onLost := func(ids []string, err error) { lost.Add(int64(len(ids))) }
	w, err := Open(Options{Dir: dir, Provider: "wazera", Now: c.Now, SyncEvery: time.Hour, CleanEvery: -1, Limits: Limits{Sync: SyncInterval, OnLost: onLost}})
	if err != nil {
		t.Fatal(err)
	}
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ok sync.Map
	var wg sync.WaitGroup
	done := make(chan struct{})
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				id := strconv.Itoa(g) + "-" + strconv.Itoa(i)
				ref, err := w.WriteRequest(&Request{Verdict: Verified, EventID: id, Body: []byte(`{"a":1}`)})
				if err != nil {
					failed.Add(1)
					continue
				}
				good.Add(1)
				ok.Store(ref.ID, true)
				if err := w.WriteOutcome(ref, &Outcome{Status: 200}); err == nil {
					good.Add(1)
				}
				runtime.Gosched()
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	// the disk fills, empties, and the hour turns, while they write
	for step := range 6 {
		time.Sleep(2 * time.Millisecond)
		w.mu.Lock()
		switch step {
		case 1:
			real := w.f
			w.f = full
			full = real
		case 3:
			real := full
			full = w.f
			w.f = real
		}
		w.mu.Unlock()
		if step == 4 {
			c.Add(2 * time.Second) // the hour turns
		}
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("writers stuck:\n%s", buf[:runtime.Stack(buf, true)])
	}
	if err := w.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		t.Log("close:", err)
	}
	ids := groupRecords(t, dir)
	ok.Range(func(k, _ any) bool {
		if ids[k.(string)] != 1 {
			t.Errorf("record %s: returned nil, %d times in the files", k, ids[k.(string)])
		}
		return true
	})
	total := 0
	for id, n := range ids {
		total += n
		if n != 1 {
			t.Errorf("record %s written %d times", id, n)
		}
	}
	// an outcome that returned nil before its group failed is reported to
	// OnLost instead
	t.Logf("%d written, %d failed, %d outcomes lost after returning, %d in the files", good.Load(), failed.Load(), lost.Load(), total)
	if int64(total) != good.Load()-lost.Load() {
		t.Errorf("%d records in the files, %d writes returned nil, %d reported lost", total, good.Load(), lost.Load())
	}
	if failed.Load() == 0 {
		t.Error("no write failed: the disk never filled")
	}
}

// TestGroupClose: Close while writers are grouping: each write
// returns (nil and in the file, or ErrClosed), none hangs.
func TestGroupClose(t *testing.T) {
	for round := range 20 {
		dir := t.TempDir()
		w, err := Open(Options{Dir: dir, Provider: "wazera", SyncEvery: time.Hour, CleanEvery: -1})
		if err != nil {
			t.Fatal(err)
		}
		var ok sync.Map
		var wg sync.WaitGroup
		for g := range 32 {
			wg.Go(func() {
				for i := 0; ; i++ {
					ref, err := w.WriteRequest(&Request{Verdict: Verified, EventID: strconv.Itoa(g*1000 + i)})
					if err != nil {
						if !errors.Is(err, ErrClosed) {
							t.Error(err)
						}
						return
					}
					ok.Store(ref.ID, true)
				}
			})
		}
		time.Sleep(time.Duration(round%5+1) * time.Millisecond)
		w.Close()
		ch := make(chan struct{})
		go func() { wg.Wait(); close(ch) }()
		select {
		case <-ch:
		case <-time.After(20 * time.Second):
			t.Fatal("writers hung after Close")
		}
		ids := groupRecords(t, dir)
		ok.Range(func(k, _ any) bool {
			if ids[k.(string)] != 1 {
				t.Errorf("round %d: record %s returned nil, %d times in the file", round, k, ids[k.(string)])
			}
			return true
		})
	}
}

// TestDetachedOutcome: an outcome written while a group is gathering joins
// it and returns nil at once; it is in the file once the group is written,
// and when that write fails, OnLost counts it: it is never lost without a
// count. The group is started by hand, as write's leader starts it.
func TestDetachedOutcome(t *testing.T) {
	for _, fail := range []bool{false, true} {
		dir := t.TempDir()
		var lost atomic.Int64
		var lostIDs []string
		w, err := Open(Options{Dir: dir, Provider: "wazera", SyncEvery: time.Hour, CleanEvery: -1,
			Limits: Limits{OnLost: func(ids []string, err error) { lost.Add(int64(len(ids))); lostIDs = ids }}})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := w.WriteRequest(&Request{Verdict: Verified, EventID: "e1"})
		if err != nil {
			t.Fatal(err)
		}
		if fail {
			full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			w.mu.Lock()
			real := w.f
			w.f = full
			w.mu.Unlock()
			defer real.Close()
		}
		buf := make([]byte, 0, 1024)
		g := &group{buf: &buf, done: make(chan struct{})}
		w.gmu.Lock()
		w.pending = g
		w.gmu.Unlock()
		returned := make(chan error, 1)
		go func() { returned <- w.WriteOutcome(ref, &Outcome{Status: 200}) }()
		select {
		case err := <-returned:
			if err != nil {
				t.Fatalf("detached outcome returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("an outcome waited for a group it joined")
		}
		_, ferr := w.flush(g)
		outcomes := 0
		(&Reader{Dir: dir}).Scan(Filter{}, func(r *Record) error {
			if r.Kind == KindOutcome {
				outcomes++
			}
			return nil
		})
		switch {
		case fail && (ferr == nil || lost.Load() != 1 || outcomes != 0 || lostIDs[0] != "e1"):
			t.Errorf("failed group: err %v, OnLost got %v, %d outcomes in the file; want an error, [e1], 0", ferr, lostIDs, outcomes)
		case !fail && (ferr != nil || lost.Load() != 0 || outcomes != 1):
			t.Errorf("group: err %v, OnLost got %d, %d outcomes in the file; want nil, 0, 1", ferr, lost.Load(), outcomes)
		}
		w.Close() // with the disk full, its fsync fails: nothing to check
	}
}
