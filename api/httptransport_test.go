package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/brokkr/brokkr/api"
)

// call sends one request to /query (path and query string after it) and
// returns the status, the Content-Type and the body, which must be JSON.
func (e *env) call(t *testing.T, method, query string, header http.Header, body string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+"/query"+query, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if !json.Valid(raw) {
		t.Fatalf("%s %s: not JSON: %s", method, query, raw)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(raw)
}

// The POST transport's contract, as gqlgen's own has it: the media type
// negotiated from Accept, 400 for a body that is not a GraphQL request, 422
// (400 under graphql-response+json) for a query that does not parse or
// validate, 200 otherwise, and a document with errors, data and extensions
// in that order, the data exactly as the executor encoded it.
func TestPostTransport(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	do := func(accept, body string) (int, string, map[string]json.RawMessage, string) {
		t.Helper()
		h := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + w.admin}}
		if accept != "" {
			h.Set("Accept", accept)
		}
		status, ct, raw := w.call(t, http.MethodPost, "", h, body)
		var doc map[string]json.RawMessage
		_ = json.Unmarshal([]byte(raw), &doc)
		return status, ct, doc, raw
	}
	for _, c := range []struct {
		name, accept, body string
		status             int
		contentType        string
		errors, data       bool
		code               string // of the first error
	}{
		{"ok", "", `{"query":"{ viewer { role } }"}`, 200, "application/json", false, true, ""},
		{"ok, wildcard", "*/*", `{"query":"{ viewer { role } }"}`, 200, "application/json", false, true, ""},
		{"ok, graphql-response+json", "application/graphql-response+json", `{"query":"{ viewer { role } }"}`, 200, "application/graphql-response+json", false, true, ""},
		{"not a request", "", `{"query":`, 400, "application/json", true, false, "BAD_USER_INPUT"},
		{"does not parse", "", `{"query":"{ viewer {"}`, 422, "application/json", true, false, "GRAPHQL_PARSE_FAILED"},
		{"does not validate", "", `{"query":"{ noSuchField }"}`, 422, "application/json", true, false, "GRAPHQL_VALIDATION_FAILED"},
		{"does not validate, graphql-response+json", "application/graphql-response+json", `{"query":"{ noSuchField }"}`, 400, "application/graphql-response+json", true, false, "GRAPHQL_VALIDATION_FAILED"},
		{"field error", "", `{"query":"{ stack(id: \"00000000-0000-0000-0000-000000000000\") { id } }"}`, 200, "application/json", true, true, "NOT_FOUND"},
	} {
		status, ct, doc, raw := do(c.accept, c.body)
		if status != c.status || ct != c.contentType {
			t.Errorf("%s: %d %s, want %d %s (%s)", c.name, status, ct, c.status, c.contentType, raw)
		}
		if _, ok := doc["errors"]; ok != c.errors {
			t.Errorf("%s: errors present %v, want %v (%s)", c.name, ok, c.errors, raw)
		}
		if d, ok := doc["data"]; ok && string(d) != "null" != c.data {
			t.Errorf("%s: data %s (%s)", c.name, d, raw)
		}
		var errs []gqlError
		_ = json.Unmarshal(doc["errors"], &errs)
		if c.errors && (len(errs) == 0 || errs[0].Extensions["code"] != c.code) {
			t.Errorf("%s: errors %s, want code %s", c.name, doc["errors"], c.code)
		}
		if c.name == "ok" && raw != `{"data":{"viewer":{"role":"ADMIN"}}}` {
			t.Errorf("ok: %s", raw)
		}
	}
}

// The GET transport: queries only, coded errors for bad parameters; another
// Upgrade header than websocket is an ordinary request; and what no
// transport serves (another method or content type) gets a coded error too.
func TestGetTransport(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	viewer := "?" + url.Values{"query": {"{ viewer { role } }"}}.Encode()
	asGen := http.Header{"Authorization": {"Bearer " + w.genA.key}}
	for _, c := range []struct {
		name, method, query string
		header              http.Header
		body                string
		status              int
		code, want          string
	}{
		{"query", "GET", viewer, asGen, "", 200, "", `{"data":{"viewer":{"role":"GENERATOR"}}}`},
		{"with variables", "GET", "?" + url.Values{"query": {"query($id: ID!) { stack(id: $id) { id } }"}, "variables": {`{"id":"` + w.stackA + `"}`}}.Encode(), asGen, "", 200, "", `{"data":{"stack":{"id":"` + w.stackA + `"}}}`},
		{"variables not JSON", "GET", "?" + url.Values{"query": {"{ viewer { role } }"}, "variables": {"nope"}}.Encode(), asGen, "", 400, "BAD_USER_INPUT", ""},
		{"malformed query string", "GET", "?query=%zz", asGen, "", 400, "BAD_USER_INPUT", ""},
		{"a mutation", "GET", "?" + url.Values{"query": {`mutation { createStack(input: {name: "by-get"}) { id } }`}}.Encode(), asGen, "", 406, "BAD_USER_INPUT", ""},
		{"does not parse", "GET", "?" + url.Values{"query": {"{ viewer {"}}.Encode(), asGen, "", 422, "GRAPHQL_PARSE_FAILED", ""},
		{"Upgrade: h2c", "GET", viewer, http.Header{"Authorization": asGen["Authorization"], "Connection": {"Upgrade"}, "Upgrade": {"h2c"}}, "", 200, "", `{"data":{"viewer":{"role":"GENERATOR"}}}`},
		{"PUT", "PUT", "", http.Header{"Content-Type": {"application/json"}}, `{"query":"{ viewer { role } }"}`, 400, "BAD_USER_INPUT", ""},
		{"POST text/plain", "POST", "", http.Header{"Content-Type": {"text/plain"}}, `{"query":"{ viewer { role } }"}`, 400, "BAD_USER_INPUT", ""},
	} {
		status, _, raw := w.call(t, c.method, c.query, c.header, c.body)
		var doc struct{ Errors []gqlError }
		_ = json.Unmarshal([]byte(raw), &doc)
		if status != c.status || (c.want != "" && raw != c.want) {
			t.Errorf("%s: %d %s, want %d", c.name, status, raw, c.status)
		}
		if c.code != "" && (len(doc.Errors) == 0 || doc.Errors[0].Extensions["code"] != c.code) {
			t.Errorf("%s: %s, want code %s", c.name, raw, c.code)
		}
	}
	// The mutation sent by GET did nothing.
	d := w.ok(t, w.genA.key, `{ stacks(filter: {name: "by-get"}) { totalCount } }`, nil)
	if n := d["stacks"].(map[string]any)["totalCount"]; n != float64(0) {
		t.Fatalf("a GET mutation created %v stacks", n)
	}
}

// A subscription sent over POST or GET is refused at once with a coded
// error pointing at websockets (issue 8, item 6): gqlgen would hold the
// request until the subscription's first event (here: a target change that
// never comes), and shutdown with it. A normal request is served right after.
func TestSubscriptionOverHTTPRefused(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := newWorldWith(t, func(e *env) api.Config { return api.Config{Feed: runFeed(t, ctx, e)} })
	const sub = `subscription { agentTargetChanges { action } }`
	body, _ := json.Marshal(map[string]any{"query": sub})
	auth := http.Header{"Authorization": {"Bearer " + w.agent1.key}}
	for _, c := range []struct {
		method, query, body string
		header              http.Header
	}{
		{"POST", "", string(body), http.Header{"Content-Type": {"application/json"}, "Authorization": auth["Authorization"]}},
		{"GET", "?" + url.Values{"query": {sub}}.Encode(), "", auth},
	} {
		reqCtx, cancelReq := context.WithTimeout(ctx, 15*time.Second)
		req, _ := http.NewRequestWithContext(reqCtx, c.method, w.srv.URL+"/query"+c.query, strings.NewReader(c.body))
		req.Header = c.header
		resp, err := w.srv.Client().Do(req)
		if err != nil {
			cancelReq()
			t.Fatalf("%s subscription: no answer: %v", c.method, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancelReq()
		var doc struct{ Errors []gqlError }
		_ = json.Unmarshal(raw, &doc)
		if resp.StatusCode != http.StatusBadRequest || len(doc.Errors) != 1 || doc.Errors[0].Extensions["code"] != "BAD_USER_INPUT" ||
			!strings.Contains(doc.Errors[0].Message, "websocket") {
			t.Errorf("%s subscription: %d %s, want 400 BAD_USER_INPUT pointing at websockets", c.method, resp.StatusCode, raw)
		}
	}
	w.ok(t, w.agent1.key, `{ viewer { role } }`, nil)
}
