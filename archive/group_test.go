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
)

type groupClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *groupClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *groupClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

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
// records in the files are exactly those whose write returned nil. (With
// SyncAlways a record can be written and its fsync then fail, so that the
// caller is told it failed: it is in the file, and on_store_error applies.
// That is why this runs with SyncInterval.)
func TestGroupWriteError(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	dir := t.TempDir()
	c := &groupClock{t: time.Date(2026, 5, 1, 13, 59, 59, 0, time.UTC)}
	w, err := Open(Options{Dir: dir, Provider: "wazera", Now: c.now, SyncEvery: time.Hour, CleanEvery: -1, Limits: Limits{Sync: SyncInterval}})
	if err != nil {
		t.Fatal(err)
	}
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ok sync.Map
	var failed, good atomic.Int64
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
			c.add(2 * time.Second) // the hour turns
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
	t.Logf("%d written, %d failed, %d in the files", good.Load(), failed.Load(), total)
	if int64(total) != good.Load() {
		t.Errorf("%d records in the files, %d writes returned nil", total, good.Load())
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
