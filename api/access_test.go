package api_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/brokkr/brokkr/api"
)

// Every access rule of DESIGN §4 from each role's side: admin, two
// generators, two agents and no key. An expectation is "ok", "n=<count>"
// (ok, and the first totalCount in the answer is count) or an error code.
func TestAccessRules(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	keys := map[string]string{
		"admin": w.admin, "genA": w.genA.key, "genB": w.genB.key,
		"agent1": w.agent1.key, "agent2": w.agent2.key, "none": "",
	}
	roles := []string{"admin", "genA", "genB", "agent1", "agent2", "none"}
	type exp map[string]string
	all := func(e string) exp {
		m := exp{}
		for _, r := range roles {
			m[r] = e
		}
		return m
	}
	with := func(base exp, kv ...string) exp {
		m := exp{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	const (
		ok     = "ok"
		unauth = "UNAUTHENTICATED"
		forbid = "FORBIDDEN"
		nf     = "NOT_FOUND"
	)
	q := func(s string, args ...any) string { return fmt.Sprintf(s, args...) }

	cases := []struct {
		name  string
		query string
		want  exp
	}{
		// Reads.
		{"viewer", `{ viewer { role } }`, with(all(ok), "none", unauth)},
		{"generator A", q(`{ generator(id: %q) { id } }`, w.genA.id),
			exp{"admin": ok, "genA": ok, "genB": nf, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"generators", `{ generators { totalCount } }`,
			exp{"admin": "n=2", "genA": "n=1", "genB": "n=1", "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"stack A", q(`{ stack(id: %q) { id } }`, w.stackA),
			exp{"admin": ok, "genA": ok, "genB": nf, "agent1": ok, "agent2": nf, "none": unauth}},
		{"stacks", `{ stacks { totalCount } }`,
			exp{"admin": "n=2", "genA": "n=1", "genB": "n=1", "agent1": "n=1", "agent2": "n=1", "none": unauth}},
		{"deployment object of A", q(`{ deploymentObject(id: %q) { id } }`, w.objA2),
			exp{"admin": ok, "genA": ok, "genB": nf, "agent1": ok, "agent2": nf, "none": unauth}},
		{"deploymentObjects", `{ deploymentObjects { totalCount } }`,
			exp{"admin": "n=3", "genA": "n=2", "genB": "n=1", "agent1": "n=2", "agent2": "n=1", "none": unauth}},
		{"agent 1", q(`{ agent(id: %q) { id } }`, w.agent1.id),
			exp{"admin": ok, "genA": ok, "genB": nf, "agent1": ok, "agent2": nf, "none": unauth}},
		{"agents", `{ agents { totalCount } }`,
			exp{"admin": "n=2", "genA": "n=1", "genB": "n=1", "agent1": "n=1", "agent2": "n=1", "none": unauth}},
		{"agentEvents", `{ agentEvents { totalCount } }`,
			exp{"admin": "n=1", "genA": "n=1", "genB": "n=0", "agent1": "n=1", "agent2": "n=0", "none": unauth}},
		{"nested: generator A's stacks' objects", q(`{ stack(id: %q) { generator { id } deploymentObjects { totalCount } } }`, w.stackA),
			exp{"admin": "n=2", "genA": "n=2", "genB": nf, "agent1": nf, "agent2": nf, "none": unauth}},
		{"includeDeleted", `{ stacks(includeDeleted: true) { totalCount } }`,
			exp{"admin": "n=2", "genA": forbid, "genB": forbid, "agent1": forbid, "agent2": forbid, "none": unauth}},

		// Writes, each refused before any change (the allowed ones run in
		// TestMutations).
		{"createGenerator", `mutation { createGenerator(input: {name: ""}) { apiKey } }`,
			exp{"admin": "BAD_USER_INPUT", "genA": forbid, "genB": forbid, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"createAgent", `mutation { createAgent(input: {name: "", clusterName: "x"}) { apiKey } }`,
			exp{"admin": "BAD_USER_INPUT", "genA": forbid, "genB": forbid, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"createStack for generator A", q(`mutation { createStack(input: {generatorId: %q, name: ""}) { id } }`, w.genA.id),
			exp{"admin": "BAD_USER_INPUT", "genA": "BAD_USER_INPUT", "genB": nf, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"createDeploymentObject in A", q(`mutation { createDeploymentObject(input: {stackId: %q, yamlContent: "a: 1"}) { id } }`, w.stackA),
			exp{"genB": nf, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"updateStack A", q(`mutation { updateStack(id: %q, input: {name: "x"}) { id } }`, w.stackA),
			exp{"genB": nf, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"deleteStack A", q(`mutation { deleteStack(id: %q, hard: true) { id } }`, "00000000-0000-0000-0000-000000000001"),
			exp{"admin": nf, "genA": forbid, "genB": forbid, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"soft deleteStack A by B", q(`mutation { deleteStack(id: %q) { id } }`, w.stackA),
			exp{"genB": nf, "agent1": forbid, "none": unauth}},
		{"addStackLabel A", q(`mutation { addStackLabel(stackId: %q, label: "x") { id } }`, w.stackA),
			exp{"genB": nf, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"setStackAnnotation A", q(`mutation { setStackAnnotation(stackId: %q, key: "k", value: "v") { id } }`, w.stackA),
			exp{"genB": nf, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"rollbackStack A", q(`mutation { rollbackStack(stackId: %q, toDeploymentObjectId: %q) { id } }`, w.stackA, w.objB1),
			exp{"admin": nf, "genA": nf, "genB": nf, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"deleteDeploymentObject of A by B", q(`mutation { deleteDeploymentObject(id: %q) { id } }`, w.objA1),
			exp{"genB": nf, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"addAgentTarget to A", q(`mutation { addAgentTarget(agentId: %q, stackId: %q) { id } }`, w.agent1.id, w.stackA),
			exp{"admin": "CONFLICT", "genA": "CONFLICT", "genB": nf, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"removeAgentTarget of A by B", q(`mutation { removeAgentTarget(agentId: %q, stackId: %q) { id } }`, w.agent1.id, w.stackA),
			exp{"genB": nf, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"reportAgentEvent on A's object", q(`mutation { reportAgentEvent(input: {deploymentObjectId: %q, eventType: "DEPLOY", status: "FAILURE", message: "x"}) { id } }`, w.objA2),
			exp{"admin": forbid, "genA": forbid, "genB": forbid, "agent2": nf, "none": unauth}},
		{"reportAgentEvent on B's object by agent 1", q(`mutation { reportAgentEvent(input: {deploymentObjectId: %q, eventType: "DEPLOY", status: "FAILURE"}) { id } }`, w.objB1),
			exp{"agent1": nf}},
		{"agentHeartbeat", `mutation { agentHeartbeat { id } }`,
			exp{"admin": forbid, "genA": forbid, "genB": forbid, "agent1": ok, "agent2": ok, "none": unauth}},
		{"updateAgent status", q(`mutation { updateAgent(id: %q, input: {name: ""}) { id } }`, w.agent1.id),
			exp{"admin": "BAD_USER_INPUT", "genA": forbid, "genB": forbid, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"rotateAgentKey of agent 1", q(`mutation { rotateAgentKey(id: %q) { apiKey } }`, w.agent1.id),
			exp{"genA": forbid, "agent2": nf, "none": unauth}},
		{"rotateGeneratorKey of A", q(`mutation { rotateGeneratorKey(id: %q) { apiKey } }`, w.genA.id),
			exp{"genB": nf, "agent1": forbid, "none": unauth}},
		{"deleteGenerator", q(`mutation { deleteGenerator(id: %q) { id } }`, w.genB.id),
			exp{"genA": forbid, "genB": forbid, "agent1": forbid, "none": unauth}},
		{"deleteAgent", q(`mutation { deleteAgent(id: %q) { id } }`, w.agent2.id),
			exp{"genA": forbid, "agent1": forbid, "agent2": forbid, "none": unauth}},
		{"agent labels", q(`mutation { addAgentLabel(agentId: %q, label: "x") { id } }`, w.agent1.id),
			exp{"genA": forbid, "agent1": forbid, "none": unauth}},
		{"rotateAdminKey", `mutation { rotateAdminKey }`,
			exp{"genA": forbid, "agent1": forbid, "none": unauth}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, role := range roles {
				want, ok := c.want[role]
				if !ok {
					continue
				}
				r := w.gql(t, keys[role], c.query, nil)
				switch {
				case want == "ok":
					if len(r.Errors) > 0 {
						t.Errorf("%s: want success, got %s", role, r.Raw)
					}
				case strings.HasPrefix(want, "n="):
					n, _ := strconv.Atoi(strings.TrimPrefix(want, "n="))
					if len(r.Errors) > 0 {
						t.Errorf("%s: want %d rows, got %s", role, n, r.Raw)
					} else if got := firstTotal(r.Data); got != n {
						t.Errorf("%s: totalCount = %d, want %d (%s)", role, got, n, r.Raw)
					}
				default:
					if r.code() != want {
						t.Errorf("%s: want %s, got %s", role, want, r.Raw)
					}
				}
			}
		})
	}

	// An INACTIVE agent authenticates and heartbeats, but sees no stacks and
	// has an empty desired state until an admin activates it.
	t.Run("inactive agent", func(t *testing.T) {
		d := w.ok(t, w.admin, `mutation { createAgent(input: {name: "agent-3", clusterName: "c3"}) { apiKey agent { id } } }`, nil)
		k3, id3 := str(d, "createAgent", "apiKey"), str(d, "createAgent", "agent", "id")
		w.ok(t, w.genA.key, q(`mutation { addAgentTarget(agentId: %q, stackId: %q) { id } }`, id3, w.stackA), nil)
		w.ok(t, k3, `mutation { agentHeartbeat { id } }`, nil)
		w.fails(t, k3, nf, q(`{ stack(id: %q) { id } }`, w.stackA), nil)
		d = w.ok(t, k3, `{ viewer { agent { status desiredState { id } } } }`, nil)
		if str(d, "viewer", "agent", "status") != "INACTIVE" || len(list(d, "viewer", "agent", "desiredState")) != 0 {
			t.Errorf("inactive agent: %v", d)
		}
		w.fails(t, k3, forbid, q(`mutation { updateAgent(id: %q, input: {status: ACTIVE}) { id } }`, id3), nil)
		w.ok(t, w.admin, q(`mutation { updateAgent(id: %q, input: {status: ACTIVE}) { id } }`, id3), nil)
		d = w.ok(t, k3, `{ viewer { agent { desiredState { id } } } }`, nil)
		if ds := list(d, "viewer", "agent", "desiredState"); len(ds) != 1 || str(ds[0], "id") != w.objA2 {
			t.Errorf("activated agent's desiredState: %v", d)
		}
	})
}

// firstTotal finds the first totalCount in a decoded answer (-1: none).
func firstTotal(v any) int {
	switch x := v.(type) {
	case map[string]any:
		if n, ok := x["totalCount"].(float64); ok {
			return int(n)
		}
		for _, c := range x {
			if n := firstTotal(c); n >= 0 {
				return n
			}
		}
	case []any:
		for _, c := range x {
			if n := firstTotal(c); n >= 0 {
				return n
			}
		}
	}
	return -1
}
