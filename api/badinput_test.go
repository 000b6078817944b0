package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/api"
)

// Bad values never answer INTERNAL or panic (issue 8, item 5): numbers past
// their type's range, literal or variable, and NUL characters in any string
// answer BAD_USER_INPUT naming the argument or field, with or without a
// key, and a normal request is served right after each. Before: an Int64
// literal past 2^63 was an HTTP 500 and a logged panic; an Int past 32 bits
// in an Int32 field and a NUL anywhere were INTERNAL; Int overflows were
// GRAPHQL_VALIDATION_FAILED.
func TestBadValuesAnswerBadUserInput(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	admin, gen, agent := w.admin, w.genA.key, w.agent1.key
	v := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	const huge = "99999999999999999999" // past 2^64
	cases := []struct {
		name, key, query string
		vars             map[string]any
		field            string
	}{
		{"Int64 literal past 2^63, no key", "", `subscription { agentDeploymentObjects(after: ` + huge + `) { id } }`, nil, "after"},
		{"Int64 literal past 2^63 in a variable default", "", `subscription($a: Int64 = ` + huge + `) { agentDeploymentObjects(after: $a) { id } }`, nil, "a"},
		{"integer literal past 2^63 as an ID, no key", "", `{ stack(id: ` + huge + `) { id } }`, nil, ""},
		{"float literal past float64 as an ID", admin, `{ stack(id: 1e999) { id } }`, nil, ""},
		{"Int literal past 2^63", admin, `{ stacks(first: ` + huge + `) { totalCount } }`, nil, ""},
		{"Int variable past 2^63", admin, `query($f: Int) { stacks(first: $f) { totalCount } }`, v("f", json.Number(huge)), "f"},
		{"Int variable past 2^31", admin, `query($f: Int) { stacks(first: $f) { totalCount } }`, v("f", 1<<31), "first"},
		{"Int literal past 2^31 in an input", admin, `mutation { createGenerator(input: {name: "x", rateLimitPerMinute: 3000000000}) { apiKey } }`, nil, "rateLimitPerMinute"},
		{"Int variable past 2^31 in an input", admin, `mutation($r: Int) { createGenerator(input: {name: "x", rateLimitPerMinute: $r}) { apiKey } }`, v("r", 3000000000), "rateLimitPerMinute"},
		{"NUL in a name literal", admin, `mutation { createGenerator(input: {name: "a\u0000b"}) { apiKey } }`, nil, "name"},
		{"NUL in a name variable", admin, `mutation($n: String!) { createGenerator(input: {name: $n}) { apiKey } }`, v("n", "a\x00b"), "name"},
		{"NUL in a description", admin, `mutation($d: String) { createGenerator(input: {name: "x", description: $d}) { apiKey } }`, v("d", "\x00"), "description"},
		{"NUL in a label", gen, `mutation($l: [String!]) { createStack(input: {name: "x", labels: $l}) { id } }`, v("l", []string{"ok", "a\x00"}), "labels"},
		{"NUL in an added label", gen, `mutation($s: ID!) { addStackLabel(stackId: $s, label: "a\u0000") { id } }`, v("s", w.stackA), "label"},
		{"NUL in an annotation value", gen, `mutation($s: ID!, $v: String!) { setStackAnnotation(stackId: $s, key: "k", value: $v) { id } }`, v("s", w.stackA, "v", "\x00"), "value"},
		{"NUL in an annotation input", admin, `mutation { createAgent(input: {name: "x", clusterName: "c", annotations: [{key: "k\u0000", value: "v"}]}) { apiKey } }`, nil, "key"},
		{"NUL in a filter name", admin, `query($n: String) { stacks(filter: {name: $n}) { totalCount } }`, v("n", "a\x00"), "name"},
		{"NUL in filter labels", admin, `query($l: [String!]) { agents(filter: {labels: $l}) { totalCount } }`, v("l", []string{"\x00"}), "labels"},
		{"NUL in an event filter", admin, `{ agentEvents(filter: {status: "\u0000"}) { totalCount } }`, nil, "status"},
		{"NUL in an event message", agent, `mutation($o: ID!, $m: String) { reportAgentEvent(input: {deploymentObjectId: $o, eventType: "DEPLOY", status: "SUCCESS", message: $m}) { id } }`, v("o", w.objA2, "m", "done\x00"), "message"},
		{"NUL in YAML", gen, `mutation($s: ID!, $y: String!) { createDeploymentObject(input: {stackId: $s, yamlContent: $y}) { id } }`, v("s", w.stackA, "y", "a: \"\x00\"\n"), "yamlContent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.gql(t, c.key, c.query, c.vars)
			if r.code() != "BAD_USER_INPUT" || r.Status >= 500 {
				t.Fatalf("want BAD_USER_INPUT, got %d %s", r.Status, r.Raw)
			}
			if c.field != "" && r.Errors[0].Extensions["field"] != c.field {
				t.Fatalf("field = %v, want %s: %s", r.Errors[0].Extensions["field"], c.field, r.Raw)
			}
			w.ok(t, admin, `{ viewer { role } }`, nil)
		})
	}
	if logs := w.logText(); strings.Contains(logs, "panic") || strings.Contains(logs, "level=ERROR") {
		t.Fatalf("the server logged a panic or an internal error:\n%s", logs)
	}
	var n int
	if err := w.db.Conn(t).QueryRow(t.Context(), "SELECT count(*) FROM generators WHERE name NOT IN ('gen-a', 'gen-b')").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d generators stored from refused requests (%v)", n, err)
	}
}

// Text that is not UTF-8 is refused before anything decodes it (issue 8,
// item 5): invalid bytes and lone UTF-16 surrogate escapes anywhere in a
// POST body, a GET parameter or a websocket message, answered 400 with
// BAD_USER_INPUT (4400 on a websocket). Before, encoding/json rewrote them
// to U+FFFD and the name was stored as other text than was sent. Escaped
// backslashes, surrogate pairs and a U+FFFD that was sent go through as
// they are.
func TestNonUTF8RequestsAreRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	post := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + w.admin}}
	create := func(nameJSON string) string {
		return `{"query": "mutation($n: String!) { createGenerator(input: {name: $n}) { generator { name } } }", "variables": {"n": ` + nameJSON + `}}`
	}
	refused := []struct{ name, body string }{
		{"invalid byte in a variable", create("\"a\xffb\"")},
		{"invalid byte in the query", "{\"query\": \"mutation { createGenerator(input: {name: \\\"a\xc3\\\"}) { apiKey } }\"}"},
		{"overlong encoding", create("\"\xc0\xaf\"")},
		{"lone high surrogate", create(`"x\ud800y"`)},
		{"lone low surrogate", create(`"x\udc00y"`)},
		{"high surrogate then another escape", create(`"\ud800\u0041"`)},
		{"high surrogate at the end", create(`"\uD800"`)},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			status, _, raw := w.call(t, http.MethodPost, "", post, c.body)
			var r result
			_ = json.Unmarshal([]byte(raw), &r)
			if status != http.StatusBadRequest || r.code() != "BAD_USER_INPUT" {
				t.Fatalf("want 400 BAD_USER_INPUT, got %d %s", status, raw)
			}
		})
	}
	accepted := []struct{ name, nameJSON, stored string }{
		{"surrogate pair", `"grin \ud83d\ude00"`, "grin \U0001F600"},
		{"escaped backslash before u", `"c:\\ud800"`, `c:\ud800`},
		{"a replacement character sent as such", `"x\ufffdy"`, "x\ufffdy"},
	}
	for _, c := range accepted {
		t.Run(c.name, func(t *testing.T) {
			status, _, raw := w.call(t, http.MethodPost, "", post, create(c.nameJSON))
			var r result
			_ = json.Unmarshal([]byte(raw), &r)
			if status != http.StatusOK || len(r.Errors) > 0 || str(r.Data, "createGenerator", "generator", "name") != c.stored {
				t.Fatalf("want %q stored, got %d %s", c.stored, status, raw)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		h := http.Header{"Authorization": {"Bearer " + w.admin}}
		for _, q := range []string{
			"?query=" + url.QueryEscape("{ stacks(filter: {name: \"a\xffb\"}) { totalCount } }"),
			"?query=" + url.QueryEscape("query($n: String) { stacks(filter: {name: $n}) { totalCount } }") + "&variables=" + url.QueryEscape(`{"n": "\udfff"}`),
		} {
			status, _, raw := w.call(t, http.MethodGet, q, h, "")
			var r result
			_ = json.Unmarshal([]byte(raw), &r)
			if status != http.StatusBadRequest || r.code() != "BAD_USER_INPUT" {
				t.Fatalf("GET %s: want 400 BAD_USER_INPUT, got %d %s", q, status, raw)
			}
		}
	})
	t.Run("websocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		conn, _, err := w.dialWS(t, ctx, "graphql-transport-ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := initWS(ctx, conn, w.admin); err != nil || m.Type != "connection_ack" {
			t.Fatalf("init: %+v %v", m, err)
		}
		// A number past 2^63: an error for the operation, with the code.
		q, _ := json.Marshal(map[string]any{"query": `subscription { agentDeploymentObjects(after: 99999999999999999999) { id } }`})
		if err := wsjson.Write(ctx, conn, wsMsg{ID: "n", Type: "subscribe", Payload: q}); err != nil {
			t.Fatal(err)
		}
		var m wsMsg
		if err := wsjson.Read(ctx, conn, &m); err != nil || m.Type != "error" || !strings.Contains(string(m.Payload), "BAD_USER_INPUT") {
			t.Fatalf("answer: %+v %v", m, err)
		}
		// Invalid UTF-8: the message is malformed, the connection closed.
		bad := []byte("{\"id\": \"x\", \"type\": \"subscribe\", \"payload\": {\"query\": \"{ viewer { role } } # \xff\"}}")
		if err := conn.Write(ctx, websocket.MessageText, bad); err != nil {
			t.Fatal(err)
		}
		if code := readUntilClose(ctx, conn); code != 4400 {
			t.Fatalf("closed with %d, want 4400", code)
		}
	})
	w.ok(t, w.admin, `{ viewer { role } }`, nil)
	var names []string
	rows, err := w.db.Conn(t).Query(t.Context(), "SELECT name FROM generators WHERE name NOT IN ('gen-a', 'gen-b') ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		names = append(names, n)
	}
	if len(names) != len(accepted) {
		t.Fatalf("stored generators %q, want only the %d accepted", names, len(accepted))
	}
}
