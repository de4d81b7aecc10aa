package archive

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Filter selects records. Zero fields select everything.
type Filter struct {
	// Provider keeps one provider's records.
	Provider string
	// Verdicts keeps request records with one of these verdicts; outcome
	// records are left out when it is set.
	Verdicts []string
	// Since and Until keep records written in [Since, Until).
	Since, Until time.Time
	// EventIDs keeps records of these events.
	EventIDs []string
}

func (f *Filter) match(r *Record) bool {
	switch {
	case f.Provider != "" && r.Provider != f.Provider:
		return false
	case !f.Since.IsZero() && r.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && !r.Time.Before(f.Until):
		return false
	case len(f.EventIDs) > 0 && !slices.Contains(f.EventIDs, r.EventID):
		return false
	case len(f.Verdicts) > 0 && (r.Kind != KindRequest || !slices.Contains(f.Verdicts, r.Verdict)):
		return false
	}
	return true
}

// Reader reads an archive directory.
type Reader struct {
	// Dir is the archive directory.
	Dir string
	// Warn is told of each line or file skipped: a truncated last line (a
	// writer killed mid-write), a corrupt line, a foreign file. nil
	// ignores them.
	Warn func(file string, line int, msg string)
}

// archiveFile is one file of the archive.
type archiveFile struct {
	path     string
	provider string
	hour     time.Time
	instance string
	size     int64
}

// files lists the archive's files, oldest hour first; provider, when not
// empty, keeps that provider's. A file in a provider directory whose name
// is not an archive file's is reported to Warn and left out.
func (r *Reader) files(provider string) ([]archiveFile, error) {
	var dirs []string
	if provider != "" {
		if err := checkProvider(provider); err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(r.Dir, provider)); errors.Is(err, os.ErrNotExist) {
			if _, err := os.Stat(r.Dir); err != nil {
				return nil, err
			}
			return nil, nil // nothing archived for this provider yet
		}
		dirs = []string{provider}
	} else {
		entries, err := os.ReadDir(r.Dir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.IsDir() {
				dirs = append(dirs, e.Name())
			}
		}
	}
	var out []archiveFile
	for _, p := range dirs {
		fs, err := listDir(filepath.Join(r.Dir, p), p, r.warn)
		if err != nil {
			if provider != "" {
				return nil, err
			}
			// another directory of the volume, such as lost+found: not
			// the archive's, and no reason to stop
			r.warn(filepath.Join(r.Dir, p), 0, "cannot read: "+err.Error()+": skipped")
			continue
		}
		out = append(out, fs...)
	}
	sortFiles(out)
	return out, nil
}

// readDir is os.ReadDir; a test makes it fail.
var readDir = os.ReadDir

// listDir lists one provider directory's archive files.
func listDir(dir, provider string, warn func(string, int, string)) ([]archiveFile, error) {
	entries, err := readDir(dir)
	if err != nil {
		return nil, err
	}
	var out []archiveFile
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		h, inst, ok := parseName(e.Name())
		if !ok || !e.Type().IsRegular() {
			if warn != nil {
				warn(path, 0, "not an archive file: skipped")
			}
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, archiveFile{path: path, provider: provider, hour: h, instance: inst, size: info.Size()})
	}
	return out, nil
}

func sortFiles(fs []archiveFile) {
	slices.SortFunc(fs, func(a, b archiveFile) int {
		if c := a.hour.Compare(b.hour); c != 0 {
			return c
		}
		return cmpString(a.path, b.path)
	})
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (r *Reader) warn(file string, line int, msg string) {
	if r.Warn != nil {
		r.Warn(file, line, msg)
	}
}

// Scan calls fn with each record that f selects, in time order: the files
// of one hour are merged by record time. A line that is not a record is
// skipped with a warning naming its file and line, and the scan goes on;
// a file whose first line is not a record is skipped whole. An error from
// fn stops the scan and is returned.
func (r *Reader) Scan(f Filter, fn func(*Record) error) error {
	files, err := r.files(f.Provider)
	if err != nil {
		return err
	}
	for i := 0; i < len(files); {
		j := i
		for j < len(files) && files[j].hour.Equal(files[i].hour) {
			j++
		}
		hour := files[i].hour
		group := files[i:j]
		i = j
		// a file holds records written before its hour ended; a record
		// read the time just before the hour turned may be in the next
		if !f.Since.IsZero() && !hour.Add(time.Hour).After(f.Since) {
			continue
		}
		if !f.Until.IsZero() && hour.After(f.Until.Add(time.Minute)) {
			continue
		}
		if err := r.merge(group, &f, fn); err != nil {
			return err
		}
	}
	return nil
}

// merge reads the files of one hour together, in record time order.
func (r *Reader) merge(group []archiveFile, f *Filter, fn func(*Record) error) error {
	var open []*lineScanner
	defer func() {
		for _, s := range open {
			s.close()
		}
	}()
	for _, af := range group {
		s, err := openScanner(af.path, r.warn)
		if err == nil {
			s.provider = af.provider
		}
		if err != nil {
			r.warn(af.path, 0, "cannot read: "+err.Error())
			continue
		}
		open = append(open, s)
		s.next()
	}
	for {
		var first *lineScanner
		for _, s := range open {
			if s.rec != nil && (first == nil || s.rec.Time.Before(first.rec.Time)) {
				first = s
			}
		}
		if first == nil {
			return nil
		}
		rec := first.rec
		first.next()
		if f.match(rec) {
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
}

// maxLine bounds one record; a longer line is skipped. A variable for
// the tests.
var maxLine = 256 << 20

// lineScanner reads one file's records.
type lineScanner struct {
	path string
	// provider, when set, is the directory's: a record of another
	// provider there is foreign, and skipped
	provider string
	f        *os.File
	br       *bufio.Reader
	line     int
	good     int // records read
	warn     func(string, int, string)
	rec      *Record // the current record; nil at the end
}

func openScanner(path string, warn func(string, int, string)) (*lineScanner, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &lineScanner{path: path, f: f, br: bufio.NewReaderSize(f, 64<<10), warn: warn}, nil
}

func (s *lineScanner) close() { s.f.Close() }

// next moves to the next record, skipping and reporting bad lines.
func (s *lineScanner) next() {
	s.rec = nil
	for {
		line, complete, err := readLine(s.br)
		if len(line) == 0 && err != nil {
			if !errors.Is(err, io.EOF) {
				s.warn(s.path, s.line+1, "read error: "+err.Error())
			}
			return
		}
		s.line++
		rec, perr := parseLine(line, complete)
		if perr != nil {
			if s.good == 0 && s.line == 1 && complete {
				s.warn(s.path, s.line, "not an archive file ("+perr.Error()+"): skipped")
				return
			}
			s.warn(s.path, s.line, perr.Error()+": skipped")
			continue
		}
		if s.provider != "" && rec.Provider != s.provider {
			s.warn(s.path, s.line, fmt.Sprintf("a record of provider %q in the directory of %s: skipped", rec.Provider, s.provider))
			continue
		}
		rec.File, rec.Line = s.path, s.line
		s.good++
		s.rec = rec
		return
	}
}

// readLine reads one line without its newline; complete is false when the
// file ended before the newline. Lines longer than maxLine are returned
// cut, as incomplete.
func readLine(br *bufio.Reader) (line []byte, complete bool, err error) {
	long := false // a fragment was left out: the line is not whole
	for {
		frag, err := br.ReadSlice('\n')
		if !long && len(line)+len(frag) <= maxLine {
			line = append(line, frag...)
		} else {
			long = true
		}
		switch {
		case err == nil:
			if long || len(line) == 0 || line[len(line)-1] != '\n' {
				return line, false, nil
			}
			return line[:len(line)-1], true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, false, err
		}
	}
}

// parseLine decodes one line into a record.
func parseLine(line []byte, complete bool) (*Record, error) {
	if !complete {
		return nil, errors.New("truncated line (a writer stopped mid-write, or the line is too long)")
	}
	line = bytes.TrimRight(line, "\r")
	rec := new(Record)
	if err := json.Unmarshal(line, rec); err != nil {
		return nil, fmt.Errorf("corrupt record: %v", err)
	}
	if err := rec.unpack(); err != nil {
		return nil, fmt.Errorf("corrupt record: %v", err)
	}
	if !rec.valid() {
		return nil, errors.New("not a record: kind, id, time, provider, and verdict or ref are required")
	}
	return rec, nil
}

// Find returns the record with id, or nil when there is none.
func (r *Reader) Find(id string) (*Record, error) {
	var found *Record
	errFound := errors.New("found")
	err := r.Scan(Filter{}, func(rec *Record) error {
		if rec.ID == id {
			found = rec
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return nil, err
	}
	return found, nil
}
