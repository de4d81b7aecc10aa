package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// testLayout captures a few top-level members and members of "data".
var testLayout = mustLayout(
	map[string]member{"id": asID, "type": asType, "ts": asTime, "data": asContainer},
	map[string]member{"text": asField(FieldText), "status": asField(FieldStatus)})

// stdlibAccepts is the reference: encoding/json's validity, UTF-8, a
// top-level object, and no name that testLayout reads twice in an object
// it reads.
func stdlibAccepts(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Valid(b) && utf8.Valid(b) && json.Unmarshal(b, &m) == nil && m != nil && !readsTwice(b, true)
}

// readsTwice reports whether the object b holds a name that testLayout
// reads twice, names compared as encoding/json compares them (EqualFold),
// here or, at the top level, inside a "data" object. It walks encoding/json's
// token stream, independently of the scanner.
func readsTwice(b []byte, top bool) bool {
	names := []string{"text", "status"}
	if top {
		names = []string{"id", "type", "ts", "data"}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.Token() // {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		key := tok.(string)
		for _, n := range names {
			if strings.EqualFold(key, n) {
				if seen[n] {
					return true
				}
				seen[n] = true
			}
		}
		var val json.RawMessage
		if dec.Decode(&val) != nil {
			return false
		}
		if top && key == "data" && val[0] == '{' && readsTwice(val, false) {
			return true
		}
	}
	return false
}

func TestScanAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range scanSeeds {
		var ev Event
		got := scanBody([]byte(in), testLayout, &ev) == nil
		if want := stdlibAccepts([]byte(in)); got != want {
			t.Errorf("%q: scanner accepts %v, encoding/json %v", in, got, want)
		}
	}
}

// scanSeeds are valid and invalid documents around every rule of the
// grammar; they also seed FuzzScan.
var scanSeeds = []string{
	`{}`, ` {} `, "{\n\t\"a\" : 1\r\n}", `{"a":1}`, `{"a":-0}`, `{"a":-0.5e+10}`, `{"a":1E5}`, `{"a":0.1}`,
	`{"a":[1,2,[3,{"b":null}]]}`, `{"a":true,"b":false,"c":null}`, `{"a":""}`, `{"a":"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"}`,
	`{"a":"é✓😀"}`, `{"id":"x","data":{"text":"hi","status":"ok"},"ts":1}`, `{"a":"0123456789abcdefghij0123456789"}`,
	`{"a":1,"a":2,"data":{"x":1,"x":2,"deep":{"text":1,"text":2}}}`, `{"data":[{"text":1,"text":2}]}`, `{"Data2":1,"data2":2}`,
	// names read twice: refused
	`{"data":[1],"data":{"text":"t"}}`, `{"id":1,"id":2}`, `{"id":1,"ID":2}`, `{"type":1,"\u0074ype":2}`,
	`{"data":{"text":1,"Text":2}}`, `{"data":{"status":1,"ſtatus":2}}`, `{"ts":1,"data":{},"TS":2}`,
	// invalid
	``, ` `, `[]`, `"x"`, `1`, `null`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,"a":1}`, `{"a":1 "b":2}`, `{a:1}`,
	`{'a':1}`, `{"a":01}`, `{"a":1.}`, `{"a":.1}`, `{"a":1e}`, `{"a":+1}`, `{"a":-}`, `{"a":0x10}`, `{"a":tru}`,
	`{"a":nul}`, `{"a":True}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12G4"}`, "{\"a\":\"\x01\"}", "{\"a\":\"\t\"}",
	"{\"a\":\"\x1f\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xed\xa0\x80\"}", `{"a":1}x`, `{"a":1}{}`,
	`{"a":[1,2}`, `{"a":[1,,2]}`, `{"a":[,]}`, `{"a":"unterminated}`, "{\"a\":1}\x00", "\ufeff{}",
}

func TestScanCaptures(t *testing.T) {
	body := `{"id":"evt_1","ts":1705312200000,"type":"a.b","data":{"text":"he said \"hi\"","status":"ok","deep":{"text":"no"}},"text":"top"}`
	var ev Event
	if err := scanBody([]byte(body), testLayout, &ev); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		got  []byte
		want string
	}{
		{ev.id, `"evt_1"`}, {ev.time, `1705312200000`}, {ev.typ, `"a.b"`},
		{ev.fields[FieldText], `"he said \"hi\""`}, {ev.fields[FieldStatus], `"ok"`},
	} {
		if string(tt.got) != tt.want {
			t.Errorf("captured %s, want %s", tt.got, tt.want)
		}
	}
	if s, _ := tokenString(ev.fields[FieldText]); s != `he said "hi"` {
		t.Errorf("decoded text = %q", s)
	}
}

func TestScanErrorsAreMalformedBody(t *testing.T) {
	for _, in := range []string{``, `[]`, `{"a":`, "{\"a\":\"\xff\"}", strings.Repeat("[", maxDepth+1)} {
		var ev Event
		err := scanBody([]byte(in), testLayout, &ev)
		if !errors.Is(err, ErrMalformedBody) {
			t.Errorf("%.20q: err = %v, want ErrMalformedBody", in, err)
		}
	}
}

func TestDepthLimit(t *testing.T) {
	ok := strings.Repeat(`{"a":`, maxDepth-1) + "1" + strings.Repeat("}", maxDepth-1)
	tooDeep := strings.Repeat(`[`, maxDepth+1) + strings.Repeat("]", maxDepth+1)
	var ev Event
	if err := scanBody([]byte(ok), testLayout, &ev); err != nil {
		t.Errorf("depth %d: %v", maxDepth-1, err)
	}
	if err := scanBody([]byte(`{"a":`+tooDeep+`}`), testLayout, &ev); !errors.Is(err, ErrMalformedBody) {
		t.Errorf("depth %d: err = %v, want ErrMalformedBody", maxDepth+2, err)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\`, "ctl\x00\x01\n\r\t\x1f\x7f", "é✓😀", "bad\xffutf8", "<script>&"} {
		out := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, out, err)
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); back != want {
			t.Errorf("%q: round trip %q, want %q", s, back, want)
		}
	}
}

// FuzzScan checks the scanner against encoding/json: the same documents
// are accepted (less those with a name read twice), and captured strings
// decode to what encoding/json decodes.
func FuzzScan(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev Event
		err := scanBody(b, testLayout, &ev)
		want := stdlibAccepts(b)
		if (err == nil) != want {
			t.Fatalf("scanner err %v, encoding/json accepts %v, input %q", err, want, b)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformedBody) {
				t.Fatalf("error %v does not wrap ErrMalformedBody", err)
			}
			return
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		// every captured top-level string agrees with encoding/json (first
		// occurrence there is the last one, so only check unique keys)
		if tok := ev.id; tok != nil && strings.Count(string(b), `"id"`) == 1 {
			var want any
			json.Unmarshal(doc["id"], &want)
			if s, ok := want.(string); ok {
				if got, _ := tokenString(tok); got != s {
					t.Fatalf("id %q, encoding/json %q", got, s)
				}
			}
		}
	})
}

// FuzzParseTime: timestamps from headers and bodies never panic and, when
// accepted, lie between the epoch and the year 10000.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"1705312200", "1705312200000", "-1", "1e309", "12345678901234567890", "text", "",
		`"2024-01-15T10:30:00Z"`, `"2024-01-15T10:30:00+07:00"`, `"0000-01-01T00:00:00Z"`, `"1705312200"`, `null`, `{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, fn := range []func() (any, error){
			func() (any, error) { return parseUnixSeconds(s) },
			func() (any, error) { return parseTimeText(s) },
			func() (any, error) { return parseTimeToken([]byte(s)) },
		} {
			v, err := fn()
			if err != nil {
				if !errors.Is(err, ErrMalformedTimestamp) && !errors.Is(err, ErrMissingTimestamp) {
					t.Fatalf("%q: error %v is not a timestamp sentinel", s, err)
				}
				continue
			}
			if y := v.(interface{ Year() int }).Year(); y < 1970 || y > 9999 {
				t.Fatalf("%q: accepted year %d", s, y)
			}
		}
	})
}
