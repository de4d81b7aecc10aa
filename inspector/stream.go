package inspector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wagate/caddy-webhook/archive"
)

// maxRead bounds what one poll reads of one file; the rest waits for the
// next poll.
const maxRead = 4 << 20

// tailer follows the archive's files from where they ended when it
// started: it reads only what is appended, and only whole lines.
type tailer struct {
	dir     string
	offsets map[string]int64
	now     func() time.Time
}

func newTailer(dir string, now func() time.Time) *tailer {
	t := &tailer{dir: dir, offsets: map[string]int64{}, now: now}
	for _, f := range t.recent() {
		if info, err := os.Stat(f); err == nil {
			t.offsets[f] = info.Size()
		}
	}
	return t
}

// recent lists the files of this hour and the last, of every provider.
func (t *tailer) recent() []string {
	now := t.now().UTC()
	var out []string
	for _, h := range []time.Time{now.Add(-time.Hour), now} {
		pattern := filepath.Join(t.dir, "*", h.Truncate(time.Hour).Format("2006-01-02T15")+"Z.*.jsonl")
		m, _ := filepath.Glob(pattern)
		out = append(out, m...)
	}
	return out
}

// poll returns the records appended since the last poll, file by file.
func (t *tailer) poll() []*archive.Record {
	var out []*archive.Record
	seen := map[string]bool{}
	for _, path := range t.recent() {
		seen[path] = true
		off := t.offsets[path] // 0 for a file created since: read it whole
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		buf, _ := io.ReadAll(io.LimitReader(io.NewSectionReader(f, off, maxRead), maxRead))
		f.Close()
		end := bytes.LastIndexByte(buf, '\n')
		if end < 0 {
			if len(buf) == maxRead { // one line longer than a poll reads: skip past it
				t.offsets[path] = off + int64(len(buf))
			}
			continue
		}
		t.offsets[path] = off + int64(end) + 1
		for line := range bytes.SplitSeq(buf[:end], []byte{'\n'}) {
			rec := new(archive.Record)
			if json.Unmarshal(line, rec) != nil || rec.ID == "" || rec.Provider == "" {
				continue // the reader reports bad lines; the stream skips them
			}
			out = append(out, rec)
		}
	}
	for path := range t.offsets {
		if !seen[path] {
			delete(t.offsets, path) // a past hour: done
		}
	}
	return out
}

// stream sends new records as server-sent events: "request" with a Row,
// "outcome" with an OutcomeEvent. It polls the archive's files every
// Options.Poll and closes after Options.MaxStream (EventSource
// reconnects); at most MaxStreams are open at once.
func (in *Inspector) stream(w http.ResponseWriter, r *http.Request) {
	provider := r.URL.Query().Get("provider")
	select {
	case in.streams <- struct{}{}:
		defer func() { <-in.streams }()
	default:
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, "too many streams open")
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	t := newTailer(in.o.Dir, in.o.Now)
	fmt.Fprintf(w, "retry: 2000\n: webhook inspector stream\n\n")
	if rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(in.o.Poll)
	defer tick.Stop()
	deadline := time.NewTimer(in.o.MaxStream)
	defer deadline.Stop()
	keepAlive := 0
	for {
		select {
		case <-r.Context().Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
		recs := t.poll()
		sent := false
		for _, rec := range recs {
			if provider != "" && rec.Provider != provider {
				continue
			}
			var kind string
			var v any
			switch rec.Kind {
			case archive.KindRequest:
				kind, v = "request", rowOf(rec)
			case archive.KindOutcome:
				kind, v = "outcome", outcomeEvent(rec)
			default:
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "event: %s\nid: %s\ndata: %s\n\n", kind, strings.ReplaceAll(rec.ID, "\n", ""), b)
			sent = true
		}
		if keepAlive++; !sent && keepAlive*int(in.o.Poll/time.Millisecond) >= 15000 {
			io.WriteString(w, ": keep-alive\n\n")
			sent, keepAlive = true, 0
		}
		if sent && rc.Flush() != nil {
			return
		}
	}
}
