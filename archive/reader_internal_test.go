package archive

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnreadableStrayDirectory: a directory of the archive that cannot be
// read, such as the lost+found of a volume mounted as the archive (root's,
// mode 0700: a gateway running as its own user cannot read it), is
// skipped with a warning; the providers' records are still read. Asked
// for by name, it is an error.
func TestUnreadableStrayDirectory(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(Options{Dir: dir, Provider: "wazera", CleanEvery: -1, Now: func() time.Time { return time.Date(2026, 5, 1, 13, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteRequest(&Request{Verdict: Verified, EventID: "e1", Secret: 0}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	os.Mkdir(filepath.Join(dir, "lost+found"), 0o700)
	defer func(f func(string) ([]os.DirEntry, error)) { readDir = f }(readDir)
	readDir = func(d string) ([]os.DirEntry, error) {
		if filepath.Base(d) == "lost+found" {
			return nil, &fs.PathError{Op: "open", Path: d, Err: fs.ErrPermission}
		}
		return os.ReadDir(d)
	}
	var warned []string
	r := &Reader{Dir: dir, Warn: func(f string, _ int, m string) { warned = append(warned, f+": "+m) }}
	sel, err := r.Select(Filter{}, false)
	if err != nil || len(sel) != 1 || sel[0].EventID != "e1" {
		t.Fatalf("select with a stray unreadable directory: %v %v", sel, err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "lost+found: cannot read") {
		t.Errorf("warnings %q", warned)
	}
	if err := r.Scan(Filter{Provider: "lost+found"}, func(*Record) error { return nil }); err == nil {
		t.Error("the unreadable directory asked for by name: no error")
	}
}

// TestOverlongLineIsNotWhole: a line longer than maxLine is reported cut,
// never as a whole line made of its head and its tail (a fragment that
// would pass the bound is left out, and a shorter one after it must not
// be taken).
func TestOverlongLineIsNotWhole(t *testing.T) {
	defer func(n int) { maxLine = n }(maxLine)
	maxLine = 40
	// fragments of 16 bytes: 16, 32, then 48 > 40 is left out, then "x}\n"
	in := strings.Repeat("a", 48) + "x}\n" + "{\"ok\":1}\n"
	br := bufio.NewReaderSize(strings.NewReader(in), 16)
	line, complete, err := readLine(br)
	if complete || err != nil {
		t.Errorf("an overlong line read as whole: %q complete=%v err=%v", line, complete, err)
	}
	line, complete, err = readLine(br)
	if !complete || string(line) != `{"ok":1}` || err != nil {
		t.Errorf("the next line: %q complete=%v err=%v", line, complete, err)
	}
}
