package session

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		d    Data
	}{
		{"empty", Data{}},
		{"user only", Data{User: "ada"}},
		{"values", Data{User: "ada", Values: map[string]json.RawMessage{
			"visits": json.RawMessage(`[{"page":"a"}]`), "note": json.RawMessage(`"x"`), "": json.RawMessage(`1`),
		}}},
		{"long", Data{User: strings.Repeat("u", 300), Values: map[string]json.RawMessage{
			strings.Repeat("k", 200): json.RawMessage(`"` + strings.Repeat("v", 70000) + `"`),
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := appendRecord(nil, tt.d)
			if len(rec) > recordLen(tt.d) {
				t.Errorf("record of %d bytes, recordLen %d", len(rec), recordLen(tt.d))
			}
			got, err := parseRecord(string(rec))
			if err != nil || !reflect.DeepEqual(got, tt.d) {
				t.Fatalf("parse = %+v, %v; want %+v", got, err, tt.d)
			}
		})
	}
}

func TestParseRecordErrors(t *testing.T) {
	good := string(appendRecord(nil, Data{User: "ada", Values: map[string]json.RawMessage{"k": json.RawMessage(`1`)}}))
	for _, rec := range []string{
		"", "\x00", "\x02" + good[1:], "x", "{", good[:len(good)-1], good + "x",
		"\x01\x03ad", "\x01\x00\xff", "\x01\x00\x02\x01k\x011\x01k\x011", // a key twice
		"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "\x01\x00\x7f",
	} {
		if d, err := parseRecord(rec); err == nil {
			t.Errorf("parseRecord(%q) = %+v, want an error", rec, d)
		}
	}
}

// FuzzParseRecord: no input makes the parser panic, and whatever it
// accepts survives encoding and parsing again unchanged.
func FuzzParseRecord(f *testing.F) {
	for _, d := range []Data{
		{}, {User: "ada"},
		{User: "ada", Values: map[string]json.RawMessage{"a": json.RawMessage(`1`), "b": json.RawMessage(`[2]`)}},
	} {
		f.Add(appendRecord(nil, d))
	}
	f.Add([]byte(`{"user":"ada","values":{"k":1}}`))
	f.Fuzz(func(t *testing.T, rec []byte) {
		d, err := parseRecord(string(rec))
		if err != nil {
			return
		}
		again, err := parseRecord(string(appendRecord(nil, d)))
		if err != nil {
			t.Fatalf("parse of the re-encoded %+v: %v", d, err)
		}
		if len(d.Values) == 0 {
			d.Values = nil
		}
		if !reflect.DeepEqual(again, d) {
			t.Fatalf("re-encoded %+v parsed as %+v", d, again)
		}
	})
}
