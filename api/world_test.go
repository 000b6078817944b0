package api_test

import (
	"testing"

	"github.com/brokkr/brokkr/api"
)

// principal is an API identity made through the API.
type principal struct {
	id, key string
}

// world is the fixture most tests share, built only through the API:
// generators A and B, each with one stack; ACTIVE agents 1 (targets A's
// stack) and 2 (targets B's stack); objects; one event from agent 1.
type world struct {
	*env
	genA, genB          principal
	agent1, agent2      principal
	stackA, stackB      string
	objA1, objA2, objB1 string
	eventA              string
	targetA1, targetB2  string
}

const (
	yamlA1 = "kind: ConfigMap\nmetadata:\n  name: a\ndata:\n  v: \"1\"\n"
	yamlA2 = "kind: ConfigMap\nmetadata:\n  name: a\ndata:\n  v: \"2\"\n---\nkind: Secret\n"
	yamlB1 = "kind: Service\n"
)

func newWorld(t *testing.T, cfg api.Config) *world {
	t.Helper()
	return newWorldWith(t, func(*env) api.Config { return cfg })
}

// newWorldWith builds the world on a server whose configuration may depend
// on the database (a feed needs it).
func newWorldWith(t *testing.T, cfg func(*env) api.Config) *world {
	t.Helper()
	w := &world{env: setupWith(t, cfg)}
	mkGen := func(name string) principal {
		d := w.ok(t, w.admin, `mutation($n: String!) { createGenerator(input: {name: $n}) { apiKey generator { id } } }`, map[string]any{"n": name})
		return principal{id: str(d, "createGenerator", "generator", "id"), key: str(d, "createGenerator", "apiKey")}
	}
	mkAgent := func(name, cluster string) principal {
		d := w.ok(t, w.admin, `mutation($n: String!, $c: String!) {
			createAgent(input: {name: $n, clusterName: $c, labels: ["edge"], annotations: [{key: "region", value: "eu"}]}) { apiKey agent { id status } } }`,
			map[string]any{"n": name, "c": cluster})
		if str(d, "createAgent", "agent", "status") != "INACTIVE" {
			t.Fatalf("new agent is not INACTIVE: %v", d)
		}
		p := principal{id: str(d, "createAgent", "agent", "id"), key: str(d, "createAgent", "apiKey")}
		w.ok(t, w.admin, `mutation($id: ID!) { updateAgent(id: $id, input: {status: ACTIVE}) { id } }`, map[string]any{"id": p.id})
		return p
	}
	w.genA, w.genB = mkGen("gen-a"), mkGen("gen-b")
	w.agent1, w.agent2 = mkAgent("agent-1", "c1"), mkAgent("agent-2", "c2")

	mkStack := func(key, name string) string {
		d := w.ok(t, key, `mutation($n: String!) {
			createStack(input: {name: $n, labels: ["prod"], annotations: [{key: "team", value: "core"}]}) { id } }`, map[string]any{"n": name})
		return str(d, "createStack", "id")
	}
	w.stackA, w.stackB = mkStack(w.genA.key, "web"), mkStack(w.genB.key, "api")

	mkObj := func(key, stack, yaml string) string {
		d := w.ok(t, key, `mutation($s: ID!, $y: String!) { createDeploymentObject(input: {stackId: $s, yamlContent: $y}) { id } }`,
			map[string]any{"s": stack, "y": yaml})
		return str(d, "createDeploymentObject", "id")
	}
	w.objA1 = mkObj(w.genA.key, w.stackA, yamlA1)
	w.objA2 = mkObj(w.genA.key, w.stackA, yamlA2)
	w.objB1 = mkObj(w.genB.key, w.stackB, yamlB1)

	mkTarget := func(key, agent, stack string) string {
		d := w.ok(t, key, `mutation($a: ID!, $s: ID!) { addAgentTarget(agentId: $a, stackId: $s) { id } }`, map[string]any{"a": agent, "s": stack})
		return str(d, "addAgentTarget", "id")
	}
	w.targetA1 = mkTarget(w.genA.key, w.agent1.id, w.stackA)
	w.targetB2 = mkTarget(w.genB.key, w.agent2.id, w.stackB)

	d := w.ok(t, w.agent1.key, `mutation($o: ID!) {
		reportAgentEvent(input: {deploymentObjectId: $o, eventType: "DEPLOY", status: "SUCCESS", message: "applied"}) { id } }`,
		map[string]any{"o": w.objA2})
	w.eventA = str(d, "reportAgentEvent", "id")
	return w
}
