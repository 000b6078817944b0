package api_test

import (
	"slices"
	"testing"

	"github.com/brokkr/brokkr/api"
)

// Every mutation of DESIGN §5, checked by its result and by reading back.
func TestMutations(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	admin := w.admin
	vars := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}

	t.Run("generators", func(t *testing.T) {
		d := w.ok(t, admin, `mutation($id: ID!) { updateGenerator(id: $id, input: {name: "gen-a2", description: "ci", rateLimitPerMinute: 1000, isActive: true}) {
			name description rateLimitPerMinute isActive } }`, vars("id", w.genA.id))
		if str(d, "updateGenerator", "name") != "gen-a2" || str(d, "updateGenerator", "description") != "ci" || num(d, "updateGenerator", "rateLimitPerMinute") != 1000 {
			t.Errorf("updateGenerator: %v", d)
		}
		// Rotation: the new key works, the old one is dead at once.
		d = w.ok(t, admin, `mutation($id: ID!) { rotateGeneratorKey(id: $id) { apiKey generator { id } } }`, vars("id", w.genA.id))
		newKey := str(d, "rotateGeneratorKey", "apiKey")
		if newKey == "" || newKey == w.genA.key || str(d, "rotateGeneratorKey", "generator", "id") != w.genA.id {
			t.Fatalf("rotateGeneratorKey: %v", d)
		}
		w.fails(t, w.genA.key, "UNAUTHENTICATED", `{ viewer { role } }`, nil)
		if str(w.ok(t, newKey, `{ viewer { generator { id } } }`, nil), "viewer", "generator", "id") != w.genA.id {
			t.Error("rotated key does not authenticate")
		}
		// A generator rotates its own key too.
		d = w.ok(t, newKey, `mutation($id: ID!) { rotateGeneratorKey(id: $id) { apiKey } }`, vars("id", w.genA.id))
		w.genA.key = str(d, "rotateGeneratorKey", "apiKey")
		w.fails(t, newKey, "UNAUTHENTICATED", `{ viewer { role } }`, nil)

		// Soft delete, key dead, restore.
		g := w.ok(t, admin, `mutation { createGenerator(input: {name: "tmp"}) { apiKey generator { id } } }`, nil)
		gid, gkey := str(g, "createGenerator", "generator", "id"), str(g, "createGenerator", "apiKey")
		sd := w.ok(t, gkey, `mutation { createStack(input: {name: "s"}) { id } }`, nil)
		sid := str(sd, "createStack", "id")
		d = w.ok(t, admin, `mutation($id: ID!) { deleteGenerator(id: $id) { id deletedAt } }`, vars("id", gid))
		if str(d, "deleteGenerator", "deletedAt") == "" {
			t.Errorf("deleteGenerator: %v", d)
		}
		w.fails(t, gkey, "UNAUTHENTICATED", `{ viewer { role } }`, nil)
		w.fails(t, admin, "NOT_FOUND", `query($id: ID!) { stack(id: $id) { id } }`, vars("id", sid))
		d = w.ok(t, admin, `mutation($id: ID!) { restoreGenerator(id: $id) { id deletedAt } }`, vars("id", gid))
		if dig(d, "restoreGenerator", "deletedAt") != nil {
			t.Errorf("restoreGenerator: %v", d)
		}
		w.ok(t, admin, `query($id: ID!) { stack(id: $id) { id } }`, vars("id", sid)) // cascade undone
		// Hard delete removes everything.
		w.ok(t, admin, `mutation($id: ID!) { deleteGenerator(id: $id, hard: true) { id } }`, vars("id", gid))
		w.fails(t, admin, "NOT_FOUND", `query($id: ID!) { generator(id: $id, includeDeleted: true) { id } }`, vars("id", gid))
		w.fails(t, admin, "NOT_FOUND", `query($id: ID!) { stack(id: $id, includeDeleted: true) { id } }`, vars("id", sid))
	})

	t.Run("stacks, labels, annotations", func(t *testing.T) {
		d := w.ok(t, w.genA.key, `mutation($id: ID!) { updateStack(id: $id, input: {name: "web2", description: "frontend"}) { name description } }`, vars("id", w.stackA))
		if str(d, "updateStack", "name") != "web2" || str(d, "updateStack", "description") != "frontend" {
			t.Errorf("updateStack: %v", d)
		}
		d = w.ok(t, w.genA.key, `mutation($id: ID!) { addStackLabel(stackId: $id, label: "blue") { labels } }`, vars("id", w.stackA))
		if l := list(d, "addStackLabel", "labels"); !slices.Contains(l, any("blue")) || !slices.Contains(l, any("prod")) {
			t.Errorf("addStackLabel: %v", d)
		}
		d = w.ok(t, w.genA.key, `mutation($id: ID!) { removeStackLabel(stackId: $id, label: "prod") { labels } }`, vars("id", w.stackA))
		if l := list(d, "removeStackLabel", "labels"); len(l) != 1 || l[0] != "blue" {
			t.Errorf("removeStackLabel: %v", d)
		}
		d = w.ok(t, w.genA.key, `mutation($id: ID!) { setStackAnnotation(stackId: $id, key: "team", value: "web") { annotations { key value } } }`, vars("id", w.stackA))
		if a := list(d, "setStackAnnotation", "annotations"); len(a) != 1 || str(a[0], "value") != "web" {
			t.Errorf("setStackAnnotation (replace): %v", d)
		}
		d = w.ok(t, w.genA.key, `mutation($id: ID!) { removeStackAnnotation(stackId: $id, key: "team") { annotations { key } } }`, vars("id", w.stackA))
		if a := list(d, "removeStackAnnotation", "annotations"); len(a) != 0 {
			t.Errorf("removeStackAnnotation: %v", d)
		}
	})

	t.Run("deployment objects", func(t *testing.T) {
		d := w.ok(t, w.genA.key, `mutation($s: ID!, $o: ID!) { rollbackStack(stackId: $s, toDeploymentObjectId: $o) { id yamlContent sequenceId } }`,
			vars("s", w.stackA, "o", w.objA1))
		rb := dig(d, "rollbackStack")
		if str(rb, "yamlContent") != yamlA1 || str(rb, "id") == w.objA1 {
			t.Errorf("rollbackStack: %v", d)
		}
		d = w.ok(t, w.genA.key, `query($s: ID!) { stack(id: $s) { latestDeploymentObject { id } } }`, vars("s", w.stackA))
		if str(d, "stack", "latestDeploymentObject", "id") != str(rb, "id") {
			t.Errorf("rollback is not the latest object: %v", d)
		}
		d = w.ok(t, w.genA.key, `mutation($o: ID!) { deleteDeploymentObject(id: $o) { id deletedAt } }`, vars("o", w.objA1))
		if str(d, "deleteDeploymentObject", "deletedAt") == "" {
			t.Errorf("deleteDeploymentObject: %v", d)
		}
		w.fails(t, w.genA.key, "NOT_FOUND", `query($o: ID!) { deploymentObject(id: $o) { id } }`, vars("o", w.objA1))
	})

	t.Run("agents", func(t *testing.T) {
		d := w.ok(t, w.agent1.key, `mutation { agentHeartbeat { id lastHeartbeat } }`, nil)
		if str(d, "agentHeartbeat", "id") != w.agent1.id || str(d, "agentHeartbeat", "lastHeartbeat") == "" {
			t.Errorf("agentHeartbeat: %v", d)
		}
		d = w.ok(t, admin, `mutation($id: ID!) { updateAgent(id: $id, input: {name: "agent-1b", clusterName: "c1b"}) { name clusterName } }`, vars("id", w.agent1.id))
		if str(d, "updateAgent", "name") != "agent-1b" || str(d, "updateAgent", "clusterName") != "c1b" {
			t.Errorf("updateAgent: %v", d)
		}
		d = w.ok(t, admin, `mutation($id: ID!) { addAgentLabel(agentId: $id, label: "gpu") { labels } }`, vars("id", w.agent1.id))
		if !slices.Contains(list(d, "addAgentLabel", "labels"), any("gpu")) {
			t.Errorf("addAgentLabel: %v", d)
		}
		d = w.ok(t, admin, `mutation($id: ID!) { removeAgentLabel(agentId: $id, label: "gpu") { labels } }`, vars("id", w.agent1.id))
		if slices.Contains(list(d, "removeAgentLabel", "labels"), any("gpu")) {
			t.Errorf("removeAgentLabel: %v", d)
		}
		d = w.ok(t, admin, `mutation($id: ID!) { setAgentAnnotation(agentId: $id, key: "zone", value: "a") { annotations { key value } } }`, vars("id", w.agent1.id))
		if len(list(d, "setAgentAnnotation", "annotations")) != 2 {
			t.Errorf("setAgentAnnotation: %v", d)
		}
		d = w.ok(t, admin, `mutation($id: ID!) { removeAgentAnnotation(agentId: $id, key: "zone") { annotations { key } } }`, vars("id", w.agent1.id))
		if len(list(d, "removeAgentAnnotation", "annotations")) != 1 {
			t.Errorf("removeAgentAnnotation: %v", d)
		}
		// An agent rotates its own key; the old one dies at once.
		d = w.ok(t, w.agent2.key, `mutation($id: ID!) { rotateAgentKey(id: $id) { apiKey agent { id } } }`, vars("id", w.agent2.id))
		k2 := str(d, "rotateAgentKey", "apiKey")
		w.fails(t, w.agent2.key, "UNAUTHENTICATED", `{ viewer { role } }`, nil)
		w.agent2.key = k2
		w.ok(t, k2, `{ viewer { agent { id } } }`, nil)
		// Targets.
		d = w.ok(t, w.genB.key, `mutation($a: ID!, $s: ID!) { removeAgentTarget(agentId: $a, stackId: $s) { id } }`, vars("a", w.agent2.id, "s", w.stackB))
		if str(d, "removeAgentTarget", "id") != w.targetB2 {
			t.Errorf("removeAgentTarget: %v", d)
		}
		d = w.ok(t, k2, `{ viewer { agent { targets { totalCount } desiredState { id } } } }`, nil)
		if num(d, "viewer", "agent", "targets", "totalCount") != 0 || len(list(d, "viewer", "agent", "desiredState")) != 0 {
			t.Errorf("agent after removeAgentTarget: %v", d)
		}
		// Delete (key dead, events hidden), restore, hard delete.
		w.ok(t, admin, `mutation($id: ID!) { deleteAgent(id: $id) { deletedAt } }`, vars("id", w.agent1.id))
		w.fails(t, w.agent1.key, "UNAUTHENTICATED", `{ viewer { role } }`, nil)
		d = w.ok(t, admin, `{ agentEvents { totalCount } }`, nil)
		if num(d, "agentEvents", "totalCount") != 0 {
			t.Errorf("events of a deleted agent still listed: %v", d)
		}
		d = w.ok(t, admin, `mutation($id: ID!) { restoreAgent(id: $id) { deletedAt } }`, vars("id", w.agent1.id))
		if dig(d, "restoreAgent", "deletedAt") != nil {
			t.Errorf("restoreAgent: %v", d)
		}
		// Deleted means revoked: the old key stays dead; a new one works.
		w.fails(t, w.agent1.key, "UNAUTHENTICATED", `{ viewer { role } }`, nil)
		d = w.ok(t, admin, `mutation($id: ID!) { rotateAgentKey(id: $id) { apiKey } }`, vars("id", w.agent1.id))
		w.ok(t, str(d, "rotateAgentKey", "apiKey"), `{ viewer { role } }`, nil)
		d = w.ok(t, admin, `{ agentEvents { totalCount } }`, nil)
		if num(d, "agentEvents", "totalCount") != 1 {
			t.Errorf("restoreAgent did not restore its events: %v", d)
		}
		w.ok(t, admin, `mutation($id: ID!) { deleteAgent(id: $id, hard: true) { id } }`, vars("id", w.agent1.id))
		w.fails(t, admin, "NOT_FOUND", `query($id: ID!) { agent(id: $id, includeDeleted: true) { id } }`, vars("id", w.agent1.id))
	})

	t.Run("restoreStack", func(t *testing.T) {
		w.ok(t, w.genB.key, `mutation($id: ID!) { deleteStack(id: $id) { id } }`, vars("id", w.stackB))
		d := w.ok(t, admin, `mutation($id: ID!) { restoreStack(id: $id) { deletedAt latestDeploymentObject { yamlContent isDeletionMarker } } }`, vars("id", w.stackB))
		if dig(d, "restoreStack", "deletedAt") != nil || str(d, "restoreStack", "latestDeploymentObject", "yamlContent") != yamlB1 {
			t.Errorf("restoreStack: %v", d)
		}
		w.ok(t, admin, `mutation($id: ID!) { deleteStack(id: $id, hard: true) { id } }`, vars("id", w.stackB))
		w.fails(t, admin, "NOT_FOUND", `query($id: ID!) { stack(id: $id, includeDeleted: true) { id } }`, vars("id", w.stackB))
	})

	t.Run("rotateAdminKey", func(t *testing.T) {
		d := w.ok(t, admin, `mutation { rotateAdminKey }`, nil)
		nk := str(d, "rotateAdminKey")
		w.fails(t, admin, "UNAUTHENTICATED", `{ viewer { role } }`, nil)
		if str(w.ok(t, nk, `{ viewer { role } }`, nil), "viewer", "role") != "ADMIN" {
			t.Error("new admin key does not work")
		}
	})
}
