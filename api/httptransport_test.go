package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/brokkr/brokkr/api"
)

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
		req, _ := http.NewRequest(http.MethodPost, w.srv.URL+"/query", bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+w.admin)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := w.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("not JSON: %s", raw)
		}
		return resp.StatusCode, resp.Header.Get("Content-Type"), doc, string(raw)
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

// The GET transport: queries only, coded errors for bad parameters.
func TestGetTransport(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	for _, c := range []struct {
		name, rawQuery string
		status         int
		code, body     string
	}{
		{"query", url.Values{"query": {"{ viewer { role } }"}}.Encode(), 200, "", `{"data":{"viewer":{"role":"GENERATOR"}}}`},
		{"with variables", url.Values{"query": {"query($id: ID!) { stack(id: $id) { id } }"}, "variables": {`{"id":"` + w.stackA + `"}`}}.Encode(), 200, "", `{"data":{"stack":{"id":"` + w.stackA + `"}}}`},
		{"variables not JSON", url.Values{"query": {"{ viewer { role } }"}, "variables": {"nope"}}.Encode(), 400, "BAD_USER_INPUT", ""},
		{"malformed query string", "query=%zz", 400, "BAD_USER_INPUT", ""},
		{"a mutation", url.Values{"query": {`mutation { createStack(input: {name: "by-get"}) { id } }`}}.Encode(), 406, "BAD_USER_INPUT", ""},
		{"does not parse", url.Values{"query": {"{ viewer {"}}.Encode(), 422, "GRAPHQL_PARSE_FAILED", ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, w.srv.URL+"/query?"+c.rawQuery, nil)
		req.Header.Set("Authorization", "Bearer "+w.genA.key)
		resp, err := w.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var doc struct{ Errors []gqlError }
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: not JSON: %s", c.name, raw)
		}
		if resp.StatusCode != c.status || (c.body != "" && string(raw) != c.body) {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, raw, c.status)
		}
		if c.code != "" && (len(doc.Errors) == 0 || doc.Errors[0].Extensions["code"] != c.code) {
			t.Errorf("%s: %s, want code %s", c.name, raw, c.code)
		}
	}
	// Another Upgrade than websocket is an ordinary request.
	req, _ := http.NewRequest(http.MethodGet, w.srv.URL+"/query?"+url.Values{"query": {"{ viewer { role } }"}}.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+w.genA.key)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "h2c")
	resp, err := w.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(raw) != `{"data":{"viewer":{"role":"GENERATOR"}}}` {
		t.Fatalf("GET with Upgrade: h2c: %d %s", resp.StatusCode, raw)
	}

	// What no transport serves gets a coded error too.
	for _, c := range []struct{ method, contentType string }{{http.MethodPut, "application/json"}, {http.MethodPost, "text/plain"}} {
		req, _ := http.NewRequest(c.method, w.srv.URL+"/query", strings.NewReader(`{"query":"{ viewer { role } }"}`))
		req.Header.Set("Content-Type", c.contentType)
		resp, err := w.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var doc struct{ Errors []gqlError }
		if json.Unmarshal(raw, &doc) != nil || resp.StatusCode != 400 || len(doc.Errors) != 1 || doc.Errors[0].Extensions["code"] != "BAD_USER_INPUT" {
			t.Fatalf("%s %s: %d %s", c.method, c.contentType, resp.StatusCode, raw)
		}
	}

	// The mutation sent by GET did nothing.
	d := w.ok(t, w.genA.key, `{ stacks(filter: {name: "by-get"}) { totalCount } }`, nil)
	if n := d["stacks"].(map[string]any)["totalCount"]; n != float64(0) {
		t.Fatalf("a GET mutation created %v stacks", n)
	}
}
