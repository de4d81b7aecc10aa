package archive_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wagate/caddy-webhook/archive"
	"github.com/wagate/caddy-webhook/verify"
)

// FuzzReader feeds arbitrary bytes to the reader as an archive file: it
// must never panic or stop, and every record it yields must be whole.
func FuzzReader(f *testing.F) {
	good := `{"kind":"request","verdict":"verified","id":"a-1","time":"2026-05-01T13:00:00Z","provider":"wazera","event_id":"e","body":"{}"}` + "\n"
	f.Add([]byte(good))
	f.Add([]byte(good + `{"kind":"outcome","id":"a-2","ref":"a-1","time":"2026-05-01T13:00:01Z","provider":"wazera","status":200}` + "\n"))
	f.Add([]byte(good + good[:40]))
	f.Add([]byte("garbage\n" + good))
	f.Add([]byte(good + "{\"kind\":\"request\"}\n\n\r\n" + good))
	f.Add([]byte(`{"kind":"request","verdict":"x","id":"1","time":"bad","provider":"p"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "wazera"), 0o700)
		name := filepath.Join(dir, "wazera", archive.FileName(time.Date(2026, 5, 1, 13, 0, 0, 0, time.UTC), "fuzz-000000000000"))
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		warned := 0
		r := &archive.Reader{Dir: dir, Warn: func(file string, line int, msg string) {
			if file != name || line < 1 {
				t.Errorf("warning names %s:%d", file, line)
			}
			warned++
		}}
		n := 0
		err := r.Scan(archive.Filter{}, func(rec *archive.Record) error {
			n++
			if rec.ID == "" || rec.Provider == "" || rec.Time.IsZero() || (rec.Kind != archive.KindRequest && rec.Kind != archive.KindOutcome) {
				t.Errorf("incomplete record yielded: %+v", rec)
			}
			if rec.File != name || rec.Line < 1 {
				t.Errorf("record located at %s:%d", rec.File, rec.Line)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Count(data, []byte("\n"))
		if !bytes.HasSuffix(data, []byte("\n")) && len(data) > 0 {
			lines++
		}
		if n > lines {
			t.Errorf("%d records from %d lines", n, lines)
		}
		if _, err := r.Select(archive.Filter{}, false); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzRoundTrip writes a request record from arbitrary fields and reads it
// back: every field must come back as written (text fields as valid
// UTF-8), the body byte for byte.
func FuzzRoundTrip(f *testing.F) {
	f.Add("evt_1", "message.received", "/wazera?x=1", "X-Sig", "sha256=ab", []byte(`{"a":"b"}`), "no_match", false)
	f.Add("\u2028\x00\"\\", "t\xff", "/\t", "X-\n", "v\x7f", []byte{0xff, 0, '"'}, "", false)
	f.Add("evt_2", "t", "/", "X", "v", []byte(`{"a": "b\u2028 \" \\\u00e9", "n": [1, 2.5e3, null, true]}`), "", true)
	f.Add("evt_3", "t", "/", "X", "v", []byte("{\n  \"pretty\": true\n}"), "", true)
	f.Add("evt_4", "t", "/", "X", "v", []byte(` {"space":"before"}`), "", true)
	f.Add("evt_5", "t", "/", "X", "v", []byte("{\"bad\":\"\xff\"}"), "", true)
	f.Fuzz(func(t *testing.T, eventID, eventType, path, hname, hvalue string, body []byte, reason string, parsed bool) {
		dir := t.TempDir()
		w, err := archive.Open(archive.Options{Dir: dir, Provider: "p", CleanEvery: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		q := &archive.Request{Verdict: archive.Verified, EventID: eventID, EventType: eventType, Path: path,
			Header: http.Header{hname: {hvalue}}, Body: body, Reason: reason, Secret: 2}
		// a verified event's body, parsed whole by the caller, is kept as
		// JSON where it can be, with the CloudEvent head as the gateway
		// builds it (the id escaped, the type a JSON string token)
		var head []byte
		if parsed && json.Valid(body) {
			q.BodyJSON = true
			head = verify.AppendJSONString([]byte(`{"specversion":"1.0","id":`), eventID)
			head = append(verify.AppendJSONString(append(head, `,"data":{"type":`...), eventType), `,"payload":`...)
			q.CloudEventHead = head
		}
		ref, err := w.WriteRequest(q)
		if err != nil {
			t.Fatal(err)
		}
		r := &archive.Reader{Dir: dir, Warn: func(file string, line int, msg string) { t.Errorf("%s:%d: %s", file, line, msg) }}
		rec, err := r.Find(ref.ID)
		if err != nil || rec == nil {
			t.Fatalf("record %s not found: %v", ref.ID, err)
		}
		text := func(s string) string { return string([]rune(s)) } // each invalid byte becomes U+FFFD
		if rec.EventID != text(eventID) || rec.EventType != text(eventType) || rec.Path != text(path) || rec.Reason != text(reason) {
			t.Errorf("fields changed: %q %q %q %q", rec.EventID, rec.EventType, rec.Path, rec.Reason)
		}
		if got := rec.Headers[text(hname)]; len(got) != 1 || (got[0] != text(hvalue) && got[0] != archive.Redacted) {
			t.Errorf("header %q = %q", hname, got)
		}
		if !bytes.Equal(rec.BodyBytes(), body) {
			t.Errorf("body %q, want %q", rec.BodyBytes(), body)
		}
		if rec.CEHead != string(head) || rec.RawBody != nil || rec.RawCEHead != nil {
			t.Errorf("CloudEvent head %q, want %q (left: %q, %q)", rec.CEHead, head, rec.RawBody, rec.RawCEHead)
		}
		if rec.Secret == nil || *rec.Secret != 2 {
			t.Errorf("secret %v", rec.Secret)
		}
	})
}
