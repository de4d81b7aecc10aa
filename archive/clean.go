package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"time"
)

// Deleted reports a file that retention or MaxSize deleted.
type Deleted struct {
	File   string
	Hour   time.Time
	Size   int64
	Reason string // "retention" or "max_size"
	// Undelivered lists the events the file held as verified that no
	// record of the provider's shows accepted: deleting the file lost the
	// last copy of an event the upstream never took.
	Undelivered []string
}

// Clean enforces retention and MaxSize on the writer's provider directory
// (every instance's files in it): it deletes whole files, oldest first,
// never one of the current hour, and reports each (also to
// Limits.OnDelete). The writer's goroutine runs it every CleanEvery and
// when the hour turns; tests call it directly.
func (w *Writer) Clean() ([]Deleted, error) {
	w.cleanMu.Lock()
	defer w.cleanMu.Unlock()
	l := w.limits.Load()
	now := w.now()
	files, err := listDir(w.dir, w.provider, nil)
	if err != nil {
		return nil, err
	}
	sortFiles(files)
	var total int64
	for _, f := range files {
		total += f.size
	}
	cur := hourOf(now)
	type doomed struct {
		archiveFile
		reason string
	}
	var gone []doomed
	keep := files
	for len(keep) > 0 && keep[0].hour.Before(cur) {
		f := keep[0]
		switch {
		case l.Retention >= 0 && !f.hour.Add(time.Hour+l.Retention).After(now):
			gone = append(gone, doomed{f, "retention"})
		case l.MaxSize >= 0 && total > l.MaxSize:
			gone = append(gone, doomed{f, "max_size"})
		default:
			goto decided
		}
		total -= f.size
		keep = keep[1:]
	}
decided:
	if len(gone) == 0 {
		return nil, nil
	}

	// which of the doomed files' events were never accepted: first within
	// them, then, for what is left, in the files that stay
	type candidate struct {
		file  int
		event string
	}
	candidates := map[string]candidate{} // deliverable request records, by record id
	var order []string                   // their ids, in file order
	accepted := map[string]bool{}
	for i, g := range gone {
		eachLight(g.path, false, func(r *lightRecord) {
			if r.passed() { // its request passed the event on to another delivery
				delete(candidates, r.Ref)
			}
			switch {
			case r.accepted():
				accepted[r.EventID] = true
			case r.deliverable():
				candidates[r.ID] = candidate{i, r.EventID}
				order = append(order, r.ID)
			}
		})
	}
	held := make([][]string, len(gone))
	pending := map[string]bool{}
	for _, id := range order {
		c, ok := candidates[id]
		if ok && !accepted[c.event] && !pending[c.event] {
			pending[c.event] = true
			held[c.file] = append(held[c.file], c.event)
		}
	}
	for _, f := range keep {
		if len(pending) == 0 {
			break
		}
		eachLight(f.path, true, func(r *lightRecord) {
			if r.accepted() {
				delete(pending, r.EventID)
			}
		})
	}

	var out []Deleted
	var errs []error
	for i, g := range gone {
		if err := os.Remove(g.path); err != nil {
			if !errors.Is(err, os.ErrNotExist) { // another instance deleted it first
				errs = append(errs, err)
			}
			continue
		}
		d := Deleted{File: g.path, Hour: g.hour, Size: g.size, Reason: g.reason}
		for _, id := range held[i] {
			if pending[id] {
				d.Undelivered = append(d.Undelivered, id)
			}
		}
		out = append(out, d)
		if l.OnDelete != nil {
			l.OnDelete(d)
		}
	}
	return out, errors.Join(errs...)
}

// lightRecord is the part of a record Clean needs.
type lightRecord struct {
	Kind    string `json:"kind"`
	Verdict string `json:"verdict"`
	ID      string `json:"id"`
	Ref     string `json:"ref"`
	EventID string `json:"event_id"`
	Status  int    `json:"status"`
	Settled string `json:"settled"`
}

func (r *lightRecord) passed() bool {
	rec := Record{Kind: r.Kind, Verdict: r.Verdict}
	return rec.Passed()
}

func (r *lightRecord) accepted() bool {
	rec := Record{Kind: r.Kind, Verdict: r.Verdict, Status: r.Status, Settled: r.Settled}
	return r.EventID != "" && rec.Accepted()
}

func (r *lightRecord) deliverable() bool {
	rec := Record{Kind: r.Kind, Verdict: r.Verdict, EventID: r.EventID}
	return rec.Deliverable()
}

// Acceptances are outcome records or duplicate request records: with
// onlyAcceptances, the other lines (those with bodies) are not decoded.
var (
	outcomePrefix   = []byte(`{"kind":"outcome"`)
	duplicatePrefix = []byte(`{"kind":"request","verdict":"duplicate"`)
)

// eachLight calls fn for each record of a file that decodes; bad lines are
// left out silently (the reader reports them).
func eachLight(path string, onlyAcceptances bool, fn func(*lightRecord)) {
	s, err := openScanner(path, nil)
	if err != nil {
		return
	}
	defer s.close()
	for {
		line, complete, err := readLine(s.br)
		if len(line) == 0 && err != nil {
			return
		}
		if !complete {
			if errors.Is(err, io.EOF) {
				return
			}
			continue
		}
		if onlyAcceptances && !bytes.HasPrefix(line, outcomePrefix) && !bytes.HasPrefix(line, duplicatePrefix) {
			continue
		}
		var r lightRecord
		if json.Unmarshal(line, &r) == nil {
			fn(&r)
		}
	}
}
