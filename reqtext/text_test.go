package reqtext

import "testing"

// CheckJSON's edge cases: escapes next to each other, at the end, and
// escaped backslashes that only look like escapes.
func TestCheckJSONText(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{`{"a": "plain"}`, true},
		{`{"a": "\ud83d\ude00"}`, true},
		{`{"a": "\uD83D\uDE00\ud83d\ude00"}`, true},
		{`{"a": "\\ud800"}`, true},   // a backslash, then "ud800"
		{`{"a": "\\\\ud800"}`, true}, // two backslashes, then "ud800"
		{`{"a": "\\\ud800"}`, false}, // a backslash, then a lone surrogate
		{`{"a": "\u00e9\n\t\""}`, true},
		{`{"a": "\ud800"}`, false},
		{`{"a": "\udfff"}`, false},
		{`{"a": "\ud800\ud800"}`, false},
		{`{"a": "\ud800\n"}`, false},
		{`{"a": "\ude00\ud83d"}`, false},
		{`"\ud800`, false},
		{`"\ud80`, true}, // malformed: the decoder's business
		{`"\`, true},
		{"\"\xff\"", false},
		{"\"\xed\xa0\x80\"", false}, // a surrogate encoded in UTF-8
	} {
		if err := CheckJSON([]byte(c.in)); (err == nil) != c.ok {
			t.Errorf("CheckJSON(%q) = %v, want ok %v", c.in, err, c.ok)
		}
	}
}
