package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/brokkr/brokkr/api"
)

// seq is n strings prefix0 … prefix(n-1).
func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// annotations is n annotation inputs k0=v0 … as GraphQL variables.
func annotations(n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{"key": fmt.Sprintf("k%d", i), "value": fmt.Sprintf("v%d", i)}
	}
	return out
}

// Caps on labels, annotations, filter lists and event messages (issue 8,
// items 2 and 6) answer BAD_USER_INPUT naming the field, whether Go or the
// database catches them, and a normal request is served right after. A
// filter at its cap is served and matches what it should. Before, a stack
// took 10,000 labels, a filter any number of them, and a message 1 MB.
func TestCapsThroughTheAPI(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{MaxBodyBytes: 4 << 20})
	gen, admin := w.genA.key, w.admin
	v := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	const createStack = `mutation($n: String!, $l: [String!], $a: [AnnotationInput!]) { createStack(input: {name: $n, labels: $l, annotations: $a}) { id } }`
	const createAgent = `mutation($n: String!, $l: [String!], $a: [AnnotationInput!]) { createAgent(input: {name: $n, clusterName: "c", labels: $l, annotations: $a}) { apiKey } }`
	full := str(w.ok(t, gen, createStack, v("n", "full", "l", seq("l", 100), "a", annotations(100))), "createStack", "id")
	fullAgent := str(w.ok(t, admin, `mutation($l: [String!], $a: [AnnotationInput!]) {
		createAgent(input: {name: "full", clusterName: "c", labels: $l, annotations: $a}) { agent { id } } }`,
		v("l", seq("l", 100), "a", annotations(100))), "createAgent", "agent", "id")

	cases := []struct {
		name, key, query string
		vars             map[string]any
		field            string
	}{
		{"stack with 101 labels", gen, createStack, v("n", "x", "l", seq("l", 101)), "labels"},
		{"stack with 101 annotations", gen, createStack, v("n", "x", "a", annotations(101)), "annotations"},
		{"agent with 101 labels", admin, createAgent, v("n", "x", "l", seq("l", 101)), "labels"},
		{"agent with 101 annotations", admin, createAgent, v("n", "x", "a", annotations(101)), "annotations"},
		{"101st stack label", gen, `mutation($s: ID!) { addStackLabel(stackId: $s, label: "one-more") { id } }`, v("s", full), "labels"},
		{"101st stack annotation", gen, `mutation($s: ID!) { setStackAnnotation(stackId: $s, key: "one-more", value: "v") { id } }`, v("s", full), "annotations"},
		{"101st agent label", admin, `mutation($a: ID!) { addAgentLabel(agentId: $a, label: "one-more") { id } }`, v("a", fullAgent), "labels"},
		{"101st agent annotation", admin, `mutation($a: ID!) { setAgentAnnotation(agentId: $a, key: "one-more", value: "v") { id } }`, v("a", fullAgent), "annotations"},
		{"stack filter of 101 labels", gen, `query($l: [String!]) { stacks(filter: {labels: $l}) { totalCount } }`, v("l", seq("l", 101)), "labels"},
		{"stack filter of 101 annotations", gen, `query($a: [AnnotationInput!]) { stacks(filter: {annotations: $a}) { totalCount } }`, v("a", annotations(101)), "annotations"},
		{"nested stack filter of 101 labels", gen, `query($g: ID!, $l: [String!]) { generator(id: $g) { stacks(filter: {labels: $l}) { totalCount } } }`, v("g", w.genA.id, "l", seq("l", 101)), "labels"},
		{"agent filter of 101 labels", admin, `query($l: [String!]) { agents(filter: {labels: $l}) { totalCount } }`, v("l", seq("l", 101)), "labels"},
		{"agent filter of 101 annotations", admin, `query($a: [AnnotationInput!]) { agents(filter: {annotations: $a}) { totalCount } }`, v("a", annotations(101)), "annotations"},
		{"event message over 32 KiB", w.agent1.key, `mutation($o: ID!, $m: String) { reportAgentEvent(input: {deploymentObjectId: $o, eventType: "DEPLOY", status: "SUCCESS", message: $m}) { id } }`,
			v("o", w.objA2, "m", strings.Repeat("é", 16385)), "message"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.fails(t, c.key, "BAD_USER_INPUT", c.query, c.vars)
			if f := r.Errors[0].Extensions["field"]; f != c.field {
				t.Fatalf("field = %v, want %s: %s", f, c.field, r.Raw)
			}
			w.ok(t, c.key, `{ viewer { role } }`, nil)
		})
	}

	// At the caps: served, and exact.
	d := w.ok(t, gen, `query($l: [String!], $a: [AnnotationInput!]) {
		all: stacks(filter: {labels: $l, annotations: $a}) { nodes { id } }
		none: stacks(filter: {labels: $l, annotations: [{key: "k0", value: "other"}]}) { totalCount } }`,
		v("l", seq("l", 100), "a", annotations(100)))
	if ids := list(d, "all", "nodes"); len(ids) != 1 || str(ids[0], "id") != full || num(d, "none", "totalCount") != 0 {
		t.Fatalf("filters at the cap: %v", d)
	}
	d = w.ok(t, admin, `query($l: [String!]) { agents(filter: {labels: $l}) { nodes { id } } }`, v("l", seq("l", 100)))
	if ids := list(d, "agents", "nodes"); len(ids) != 1 || str(ids[0], "id") != fullAgent {
		t.Fatalf("agent filter at the cap: %v", d)
	}
	w.ok(t, w.agent1.key, `mutation($o: ID!, $m: String) { reportAgentEvent(input: {deploymentObjectId: $o, eventType: "DEPLOY", status: "SUCCESS", message: $m}) { id } }`,
		v("o", w.objA2, "m", strings.Repeat("x", 32<<10)))
}

// Deleting a generator or an agent revokes its key for good (issue 8,
// item 7): a restore does not make the old key work again; the restored
// principal acts once an admin rotates its key. Before, the old key came
// back with the restore.
func TestDeletedPrincipalsStayRevoked(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	for _, c := range []struct {
		name, id, key, kind string
	}{
		{"generator", w.genB.id, w.genB.key, "Generator"},
		{"agent", w.agent2.id, w.agent2.key, "Agent"},
	} {
		t.Run(c.name, func(t *testing.T) {
			vars := map[string]any{"id": c.id}
			w.ok(t, c.key, `{ viewer { role } }`, nil)
			w.ok(t, w.admin, `mutation($id: ID!) { delete`+c.kind+`(id: $id) { id } }`, vars)
			w.fails(t, c.key, "UNAUTHENTICATED", `{ viewer { role } }`, nil)
			w.ok(t, w.admin, `mutation($id: ID!) { restore`+c.kind+`(id: $id) { id } }`, vars)
			w.fails(t, c.key, "UNAUTHENTICATED", `{ viewer { role } }`, nil)
			d := w.ok(t, w.admin, `mutation($id: ID!) { rotate`+c.kind+`Key(id: $id) { apiKey } }`, vars)
			newKey := str(d, "rotate"+c.kind+"Key", "apiKey")
			if r := w.ok(t, newKey, `{ viewer { role } }`, nil); str(r, "viewer", "role") != strings.ToUpper(c.name) {
				t.Fatalf("new key: %v", r)
			}
			w.fails(t, c.key, "UNAUTHENTICATED", `{ viewer { role } }`, nil)
		})
	}
}
