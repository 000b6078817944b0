// Package reqtext checks and decodes the text of GraphQL requests, the same
// way for every transport (HTTP and websockets).
package reqtext

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"unicode/utf8"
)

// The request text check (issue 8, item 5). encoding/json decodes invalid
// UTF-8 and lone UTF-16 surrogate escapes (\ud800) to U+FFFD without a word,
// so a request carrying them would be stored as other text than was sent
// (and checksummed as such). They are refused here, before any decoding,
// with BAD_USER_INPUT; the String scalar (graph/scalar) refuses NUL.

var (
	errNotUTF8       = errors.New("the request is not valid UTF-8")
	errLoneSurrogate = errors.New(`the request has a lone UTF-16 surrogate escape (such as \ud800): it is no character`)
	errQueryNotUTF8  = errors.New("the query string is not valid UTF-8")
	jsonQueryParams  = []string{"variables", "extensions"}
)

// The UTF-16 surrogates: high ones (first of a pair), then low ones.
const (
	surrogateHigh = 0xD800
	surrogateLow  = 0xDC00
	surrogateEnd  = 0xDFFF
)

// CheckJSON refuses JSON text that is not valid UTF-8 or that escapes a
// UTF-16 surrogate other than as a high-low pair. Malformed JSON otherwise
// is left to the decoder.
func CheckJSON(b []byte) error {
	if !utf8.Valid(b) {
		return errNotUTF8
	}
	for i := 0; ; i++ {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 || i+j+1 >= len(b) {
			return nil
		}
		i += j + 1 // the escaped character, skipped with its backslash
		if b[i] != 'u' {
			continue
		}
		r, ok := hex4(b, i+1)
		if !ok {
			continue
		}
		i += 4
		if r < surrogateHigh || r > surrogateEnd {
			continue
		}
		if r >= surrogateLow {
			return errLoneSurrogate
		}
		// A high surrogate needs a low one right after it.
		if i+6 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
			if r2, ok := hex4(b, i+3); ok && r2 >= surrogateLow && r2 <= surrogateEnd {
				i += 6
				continue
			}
		}
		return errLoneSurrogate
	}
}

// hex4 reads the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// CheckQuery is CheckJSON for a GET request's parameters: each must be
// UTF-8, and the JSON ones (variables, extensions) must pass CheckJSON. A query string that does not parse is left to the GET
// transport.
func CheckQuery(rawQuery string) error {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil
	}
	for _, vs := range q {
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return errQueryNotUTF8
			}
		}
	}
	for _, name := range jsonQueryParams {
		if err := CheckJSON([]byte(q.Get(name))); err != nil {
			return err
		}
	}
	return nil
}

// Decode decodes a request's JSON as gqlgen's transports do: numbers stay
// exact (json.Number), so Int64 variables keep every digit.
func Decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}
