package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// Tests of the differential test's own comparison (differential_test.go),
// without a database.

// The comparison itself: equal bytes pass, the same errors in another
// order pass as reordered, and anything else (data, an error's content,
// the number of errors, the members' order, the status) is a mismatch.
func TestDifferentialSame(t *testing.T) {
	t.Parallel()
	ans := func(body string) diffAnswer {
		return diffAnswer{status: 200, contentType: "application/json", body: []byte(body)}
	}
	e1, e2 := `{"message":"a","path":["x",0]}`, `{"message":"a","path":["x",1]}`
	base := `{"errors":[` + e1 + `,` + e2 + `],"data":{"x":null}}`
	for _, c := range []struct {
		name           string
		other          diffAnswer
		equal, reorder bool
	}{
		{"identical", ans(base), true, false},
		{"errors swapped", ans(`{"errors":[` + e2 + `,` + e1 + `],"data":{"x":null}}`), true, true},
		{"an error changed", ans(`{"errors":[` + e2 + `,{"message":"b","path":["x",0]}],"data":{"x":null}}`), false, false},
		{"an error missing", ans(`{"errors":[` + e2 + `],"data":{"x":null}}`), false, false},
		{"an error repeated", ans(`{"errors":[` + e2 + `,` + e2 + `],"data":{"x":null}}`), false, false},
		{"data differs", ans(`{"errors":[` + e2 + `,` + e1 + `],"data":{"x":[]}}`), false, false},
		{"members reordered", ans(`{"data":{"x":null},"errors":[` + e1 + `,` + e2 + `]}`), false, false},
		{"whitespace", ans(`{"errors":[` + e1 + `, ` + e2 + `],"data":{"x":null}}`), false, false},
		{"status", diffAnswer{status: 400, contentType: "application/json", body: []byte(base)}, false, false},
		{"content type", diffAnswer{status: 200, contentType: "application/graphql-response+json", body: []byte(base)}, false, false},
		{"not JSON", ans(`{"errors":[` + e2 + `,` + e1 + `],"data":{"x":null}`), false, false},
	} {
		if eq, re := same(ans(base), c.other); eq != c.equal || re != c.reorder {
			t.Errorf("%s: same = %v, %v; want %v, %v", c.name, eq, re, c.equal, c.reorder)
		}
	}
}

// compare over HTTP: a planner that answers differently is caught; one
// that answers one of the executor's answers (when the executor has two)
// passes, counted as such.
func TestDifferentialCompare(t *testing.T) {
	t.Parallel()
	serve := func(bodies ...string) *httptest.Server {
		var n atomic.Int64
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, bodies[int(n.Add(1)-1)%len(bodies)])
		}))
		t.Cleanup(s.Close)
		return s
	}
	a, b := `{"data":{"x":1}}`, `{"data":{"x":2}}`
	req := diffRequest{name: "q", role: "admin", query: "{ x }"}
	for _, c := range []struct {
		name                   string
		exec, plan             []string
		equal, varies, reorder bool
	}{
		{"same", []string{a}, []string{a}, true, false, false},
		{"different", []string{a}, []string{b}, false, false, false},
		{"one of the executor's answers", []string{a, b}, []string{b}, true, true, false},
		{"none of the executor's answers", []string{a, b}, []string{`{"data":{"x":3}}`}, false, true, false},
	} {
		p := diffPair{exec: serve(c.exec...), plan: serve(c.plan...)}
		res, err := p.compare(map[string]string{"admin": "k"}, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.equal != c.equal || res.execVaries != c.varies || res.reordered != c.reorder {
			t.Errorf("%s: equal %v, varies %v, reordered %v; want %v, %v, %v", c.name, res.equal, res.execVaries, res.reordered, c.equal, c.varies, c.reorder)
		}
		if !res.equal && !strings.Contains(res.report(), "first difference at byte 13") {
			t.Errorf("%s: the report does not point at the difference:\n%s", c.name, res.report())
		}
	}
}
