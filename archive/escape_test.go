package archive_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wagate/caddy-webhook/archive"
	"github.com/wagate/caddy-webhook/internal/testutil"
)

// TestNewDirectoriesAre0700: an archive directory that did not exist is
// created 0700, as is each provider directory; a provider directory that
// exists with a wider mode is narrowed to 0700.
func TestNewDirectoriesAre0700(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "archive")
	os.MkdirAll(filepath.Join(dir, "zavu"), 0o700)
	os.Chmod(filepath.Join(dir, "zavu"), 0o755)
	os.Chmod(dir, 0o700)
	c := testutil.NewClock(t0)
	open(t, dir, "wazera", c, archive.Limits{})
	open(t, dir, "zavu", c, archive.Limits{})
	fresh := filepath.Join(t.TempDir(), "fresh")
	open(t, fresh, "vobiz", c, archive.Limits{})
	for _, d := range []string{dir, filepath.Join(dir, "wazera"), filepath.Join(dir, "zavu"), fresh, filepath.Join(fresh, "vobiz")} {
		if info, err := os.Stat(d); err != nil || info.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v (%v), want 0700", d, info.Mode().Perm(), err)
		}
	}
}

// TestProviderCannotEscape: a provider name that is not one plain
// directory name is refused by the writer and by the reader, which reads
// nothing outside the archive directory.
func TestProviderCannotEscape(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "archive")
	outside := filepath.Join(root, "outside")
	c := testutil.NewClock(t0)
	// archive files outside the archive directory
	w := open(t, outside, "wazera", c, archive.Limits{})
	if _, err := w.WriteRequest(verified("secret-event", `{}`)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	open(t, dir, "wazera", c, archive.Limits{})
	for _, p := range []string{"../outside/wazera", "..", ".", "a/b", `a\b`, "", ".hidden", "/etc"} {
		if _, err := archive.Open(archive.Options{Dir: dir, Provider: p}); err == nil || !strings.Contains(err.Error(), "cannot name a directory") {
			t.Errorf("Open provider %q: %v, want refused", p, err)
		}
		if p == "" {
			continue // the reader's "every provider"
		}
		r := &archive.Reader{Dir: dir}
		read := 0
		err := r.Scan(archive.Filter{Provider: p}, func(*archive.Record) error { read++; return nil })
		if err == nil || !strings.Contains(err.Error(), "cannot name a directory") || read != 0 {
			t.Errorf("Scan provider %q: %v, %d records read, want refused", p, err, read)
		}
		if _, err := r.Select(archive.Filter{Provider: p}, true); err == nil {
			t.Errorf("Select provider %q: no error", p)
		}
	}
}

// TestSymlinkedProviderDirectoryRefused: the writer does not follow a
// symbolic link where its provider directory should be (its files, and
// its chmod, would land elsewhere); the reader skips symbolic links to
// files with a warning, and deletes none of them when cleaning.
func TestSymlinkedProviderDirectoryRefused(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "archive")
	elsewhere := filepath.Join(root, "elsewhere")
	os.MkdirAll(dir, 0o700)
	os.MkdirAll(elsewhere, 0o755)
	if err := os.Symlink(elsewhere, filepath.Join(dir, "wazera")); err != nil {
		t.Fatal(err)
	}
	if _, err := archive.Open(archive.Options{Dir: dir, Provider: "wazera"}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Open through a symlinked provider directory: %v, want refused", err)
	}
	if info, _ := os.Stat(elsewhere); info.Mode().Perm() != 0o755 {
		t.Errorf("the link's target was changed to %v", info.Mode().Perm())
	}

	// a symbolic link with an archive file's name, to a file elsewhere
	c := testutil.NewClock(t0.Add(-30 * 24 * 3600e9)) // old enough for retention
	w := open(t, elsewhere, "zavu", c, archive.Limits{})
	w.WriteRequest(verified("linked", `{}`))
	w.Close()
	target, _ := filepath.Glob(filepath.Join(elsewhere, "zavu", "*.jsonl"))
	if len(target) != 1 {
		t.Fatalf("files %v", target)
	}
	cur := open(t, dir, "zavu", testutil.NewClock(t0), archive.Limits{})
	link := filepath.Join(dir, "zavu", filepath.Base(target[0]))
	if err := os.Symlink(target[0], link); err != nil {
		t.Fatal(err)
	}
	var warned []string
	r := &archive.Reader{Dir: dir, Warn: func(f string, _ int, m string) { warned = append(warned, f+": "+m) }}
	n := 0
	r.Scan(archive.Filter{}, func(*archive.Record) error { n++; return nil })
	if n != 0 || len(warned) != 1 || !strings.Contains(warned[0], "not an archive file") {
		t.Errorf("read %d records through a link, warnings %q", n, warned)
	}
	if _, err := cur.Clean(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("clean removed the link: %v", err)
	}
	if _, err := os.Stat(target[0]); err != nil {
		t.Errorf("clean removed the link's target: %v", err)
	}
}

// TestRecordOfAnotherProviderSkipped: a record whose provider is not its
// directory's (a file copied into the wrong directory, or a forged one
// naming a provider that would escape it) is skipped with a warning, and
// never selected for a replay.
func TestRecordOfAnotherProviderSkipped(t *testing.T) {
	dir := t.TempDir()
	c := testutil.NewClock(t0)
	w := open(t, dir, "wazera", c, archive.Limits{})
	w.WriteRequest(verified("mine", `{}`))
	w.Close()
	stray := filepath.Join(dir, "wazera", archive.FileName(t0, "copied-000000000000"))
	os.WriteFile(stray, []byte(
		`{"kind":"request","verdict":"verified","id":"x-1","time":"2026-05-01T13:59:59Z","provider":"zavu","event_id":"theirs","body":"{}"}`+"\n"+
			`{"kind":"request","verdict":"verified","id":"x-2","time":"2026-05-01T13:59:59Z","provider":"../../etc","event_id":"forged","body":"{}"}`+"\n"), 0o600)
	var warned []string
	r := &archive.Reader{Dir: dir, Warn: func(f string, l int, m string) { warned = append(warned, m) }}
	sel, err := r.Select(archive.Filter{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(sel) != 1 || sel[0].EventID != "mine" {
		t.Errorf("selected %d records, want only mine", len(sel))
	}
	if len(warned) != 2 || !strings.Contains(warned[0], `provider "zavu" in the directory of wazera`) {
		t.Errorf("warnings %q", warned)
	}
}
