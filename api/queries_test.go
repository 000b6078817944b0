package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"

	"github.com/brokkr/brokkr/api"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Every query of DESIGN §5 and every nested edge, read as the admin and
// checked against what the world put in.
func TestQueries(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	admin := w.admin

	t.Run("viewer", func(t *testing.T) {
		for _, c := range []struct {
			key, role, field, id string
		}{
			{admin, "ADMIN", "", ""},
			{w.genA.key, "GENERATOR", "generator", w.genA.id},
			{w.agent1.key, "AGENT", "agent", w.agent1.id},
		} {
			d := w.ok(t, c.key, `{ viewer { role generator { id } agent { id } } }`, nil)
			if str(d, "viewer", "role") != c.role {
				t.Errorf("viewer role = %v, want %s", d, c.role)
			}
			if c.field != "" && str(d, "viewer", c.field, "id") != c.id {
				t.Errorf("viewer.%s = %v, want %s", c.field, d, c.id)
			}
		}
	})

	t.Run("generator and its stacks", func(t *testing.T) {
		d := w.ok(t, admin, `query($id: ID!) { generator(id: $id) {
			id name description isActive lastActiveAt rateLimitPerMinute createdAt updatedAt deletedAt
			stacks { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } nodes { id name } } } }`,
			map[string]any{"id": w.genA.id})
		g := dig(d, "generator")
		if str(g, "name") != "gen-a" || dig(g, "isActive") != true || dig(g, "deletedAt") != nil || str(g, "createdAt") == "" {
			t.Errorf("generator: %v", g)
		}
		if str(g, "lastActiveAt") == "" {
			t.Errorf("lastActiveAt not maintained after the generator's requests: %v", g)
		}
		if num(g, "stacks", "totalCount") != 1 || str(g, "stacks", "nodes", 0, "id") != w.stackA ||
			str(g, "stacks", "edges", 0, "node", "id") != w.stackA || str(g, "stacks", "edges", 0, "cursor") == "" {
			t.Errorf("generator.stacks: %v", dig(g, "stacks"))
		}
	})

	t.Run("generators", func(t *testing.T) {
		d := w.ok(t, admin, `{ generators { totalCount nodes { name } } }`, nil)
		if num(d, "generators", "totalCount") != 2 {
			t.Errorf("generators: %v", d)
		}
		d = w.ok(t, admin, `{ generators(filter: {name: "gen-b"}) { totalCount nodes { id } } }`, nil)
		if num(d, "generators", "totalCount") != 1 || str(d, "generators", "nodes", 0, "id") != w.genB.id {
			t.Errorf("generators(filter name): %v", d)
		}
	})

	t.Run("stack and its edges", func(t *testing.T) {
		d := w.ok(t, admin, `query($id: ID!) { stack(id: $id) {
			id name description generator { id } labels annotations { key value }
			deploymentObjects { totalCount nodes { id sequenceId } }
			latestDeploymentObject { id }
			targets { totalCount nodes { id agent { id } stack { id } createdAt } }
			agents { totalCount nodes { id name } }
			createdAt updatedAt deletedAt } }`, map[string]any{"id": w.stackA})
		s := dig(d, "stack")
		if str(s, "name") != "web" || str(s, "generator", "id") != w.genA.id {
			t.Errorf("stack: %v", s)
		}
		if l := list(s, "labels"); len(l) != 1 || l[0] != "prod" {
			t.Errorf("labels: %v", l)
		}
		if str(s, "annotations", 0, "key") != "team" || str(s, "annotations", 0, "value") != "core" {
			t.Errorf("annotations: %v", dig(s, "annotations"))
		}
		objs := list(s, "deploymentObjects", "nodes")
		if len(objs) != 2 || str(objs[0], "id") != w.objA2 || str(objs[1], "id") != w.objA1 || num(objs[0], "sequenceId") <= num(objs[1], "sequenceId") {
			t.Errorf("deploymentObjects not newest first: %v", objs)
		}
		if str(s, "latestDeploymentObject", "id") != w.objA2 {
			t.Errorf("latestDeploymentObject: %v", dig(s, "latestDeploymentObject"))
		}
		if str(s, "targets", "nodes", 0, "id") != w.targetA1 || str(s, "targets", "nodes", 0, "agent", "id") != w.agent1.id ||
			str(s, "targets", "nodes", 0, "stack", "id") != w.stackA {
			t.Errorf("targets: %v", dig(s, "targets"))
		}
		if num(s, "agents", "totalCount") != 1 || str(s, "agents", "nodes", 0, "id") != w.agent1.id {
			t.Errorf("agents: %v", dig(s, "agents"))
		}
	})

	t.Run("stacks filters", func(t *testing.T) {
		for _, c := range []struct {
			filter string
			want   []string
		}{
			{`{}`, []string{w.stackA, w.stackB}},
			{`{name: "web"}`, []string{w.stackA}},
			{fmt.Sprintf(`{generatorId: %q}`, w.genB.id), []string{w.stackB}},
			{`{labels: ["prod"]}`, []string{w.stackA, w.stackB}},
			{`{labels: ["prod", "nope"]}`, nil},
			{`{annotations: [{key: "team", value: "core"}]}`, []string{w.stackA, w.stackB}},
			{`{annotations: [{key: "team", value: "other"}]}`, nil},
		} {
			d := w.ok(t, admin, `{ stacks(filter: `+c.filter+`) { totalCount nodes { id } } }`, nil)
			var got []string
			for _, n := range list(d, "stacks", "nodes") {
				got = append(got, str(n, "id"))
			}
			slices.Sort(got)
			want := slices.Clone(c.want)
			slices.Sort(want)
			if !slices.Equal(got, want) || int(num(d, "stacks", "totalCount")) != len(want) {
				t.Errorf("stacks(filter: %s) = %v, want %v", c.filter, d, want)
			}
		}
	})

	t.Run("deploymentObject and its edges", func(t *testing.T) {
		d := w.ok(t, admin, `query($id: ID!) { deploymentObject(id: $id) {
			id sequenceId stack { id } yamlContent yamlChecksum isDeletionMarker submittedAt createdAt deletedAt
			events { totalCount nodes { id agent { id } deploymentObject { id } eventType status message createdAt } } } }`,
			map[string]any{"id": w.objA2})
		o := dig(d, "deploymentObject")
		if str(o, "yamlContent") != yamlA2 || str(o, "yamlChecksum") != sha(yamlA2) || dig(o, "isDeletionMarker") != false ||
			str(o, "stack", "id") != w.stackA || num(o, "sequenceId") <= 0 {
			t.Errorf("deploymentObject: %v", o)
		}
		e := dig(o, "events", "nodes", 0)
		if num(o, "events", "totalCount") != 1 || str(e, "id") != w.eventA || str(e, "agent", "id") != w.agent1.id ||
			str(e, "deploymentObject", "id") != w.objA2 || str(e, "eventType") != "DEPLOY" || str(e, "status") != "SUCCESS" ||
			str(e, "message") != "applied" {
			t.Errorf("events: %v", dig(o, "events"))
		}
	})

	t.Run("deploymentObjects", func(t *testing.T) {
		d := w.ok(t, admin, `{ deploymentObjects { totalCount nodes { id } } }`, nil)
		if num(d, "deploymentObjects", "totalCount") != 3 || str(d, "deploymentObjects", "nodes", 0, "id") != w.objB1 {
			t.Errorf("deploymentObjects: %v", d)
		}
		d = w.ok(t, admin, `query($s: ID!) { deploymentObjects(filter: {stackId: $s}) { totalCount } }`, map[string]any{"s": w.stackB})
		if num(d, "deploymentObjects", "totalCount") != 1 {
			t.Errorf("deploymentObjects(stackId): %v", d)
		}
	})

	t.Run("agent and its edges", func(t *testing.T) {
		d := w.ok(t, admin, `query($id: ID!) { agent(id: $id) {
			id name clusterName status lastHeartbeat labels annotations { key value }
			targets { totalCount nodes { stack { id } } }
			stacks { totalCount nodes { id } }
			desiredState { id }
			events { totalCount nodes { id } }
			createdAt updatedAt deletedAt } }`, map[string]any{"id": w.agent1.id})
		a := dig(d, "agent")
		if str(a, "name") != "agent-1" || str(a, "clusterName") != "c1" || str(a, "status") != "ACTIVE" {
			t.Errorf("agent: %v", a)
		}
		if l := list(a, "labels"); len(l) != 1 || l[0] != "edge" || str(a, "annotations", 0, "value") != "eu" {
			t.Errorf("agent labels/annotations: %v", a)
		}
		if str(a, "targets", "nodes", 0, "stack", "id") != w.stackA || str(a, "stacks", "nodes", 0, "id") != w.stackA {
			t.Errorf("agent targets/stacks: %v", a)
		}
		if ds := list(a, "desiredState"); len(ds) != 1 || str(ds[0], "id") != w.objA2 {
			t.Errorf("desiredState = %v, want [%s]", ds, w.objA2)
		}
		if num(a, "events", "totalCount") != 1 || str(a, "events", "nodes", 0, "id") != w.eventA {
			t.Errorf("agent events: %v", dig(a, "events"))
		}
	})

	t.Run("agents filters", func(t *testing.T) {
		for _, c := range []struct {
			filter string
			n      float64
		}{
			{`{}`, 2},
			{`{name: "agent-1"}`, 1},
			{`{clusterName: "c2"}`, 1},
			{`{status: ACTIVE}`, 2},
			{`{status: INACTIVE}`, 0},
			{`{labels: ["edge"]}`, 2},
			{`{annotations: [{key: "region", value: "us"}]}`, 0},
		} {
			d := w.ok(t, admin, `{ agents(filter: `+c.filter+`) { totalCount nodes { id } } }`, nil)
			if num(d, "agents", "totalCount") != c.n || len(list(d, "agents", "nodes")) != int(c.n) {
				t.Errorf("agents(filter: %s) = %v, want %v", c.filter, d, c.n)
			}
		}
	})

	t.Run("agentEvents", func(t *testing.T) {
		for _, c := range []struct {
			filter string
			n      float64
		}{
			{`{}`, 1},
			{fmt.Sprintf(`{agentId: %q}`, w.agent1.id), 1},
			{fmt.Sprintf(`{agentId: %q}`, w.agent2.id), 0},
			{fmt.Sprintf(`{deploymentObjectId: %q}`, w.objA2), 1},
			{fmt.Sprintf(`{stackId: %q}`, w.stackB), 0},
			{`{eventType: "DEPLOY", status: "SUCCESS"}`, 1},
			{`{status: "FAILURE"}`, 0},
		} {
			d := w.ok(t, admin, `{ agentEvents(filter: `+c.filter+`) { totalCount nodes { id } } }`, nil)
			if num(d, "agentEvents", "totalCount") != c.n {
				t.Errorf("agentEvents(filter: %s) = %v, want %v", c.filter, d, c.n)
			}
		}
	})

	t.Run("pagination", func(t *testing.T) {
		var seen []string
		var after any
		for page := 0; page < 5; page++ {
			d := w.ok(t, admin, `query($a: String) { deploymentObjects(first: 1, after: $a) {
				totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }`, map[string]any{"a": after})
			c := dig(d, "deploymentObjects")
			if num(c, "totalCount") != 3 {
				t.Fatalf("totalCount changes with after: %v", c)
			}
			edges := list(c, "edges")
			if len(edges) != 1 {
				t.Fatalf("page %d: %v", page, c)
			}
			seen = append(seen, str(edges[0], "node", "id"))
			if str(edges[0], "cursor") != str(c, "pageInfo", "endCursor") {
				t.Errorf("endCursor is not the last edge's cursor: %v", c)
			}
			if dig(c, "pageInfo", "hasNextPage") != true {
				break
			}
			after = str(c, "pageInfo", "endCursor")
		}
		if want := []string{w.objB1, w.objA2, w.objA1}; !slices.Equal(seen, want) {
			t.Errorf("paged through %v, want %v", seen, want)
		}
		// Nested lists page the same way, and their cursors are stable.
		d := w.ok(t, admin, `query($id: ID!) { stack(id: $id) { deploymentObjects(first: 1) { pageInfo { endCursor } } } }`, map[string]any{"id": w.stackA})
		cur := str(d, "stack", "deploymentObjects", "pageInfo", "endCursor")
		d = w.ok(t, admin, `query($id: ID!, $a: String) { stack(id: $id) { deploymentObjects(first: 1, after: $a) { nodes { id } pageInfo { hasNextPage } } } }`,
			map[string]any{"id": w.stackA, "a": cur})
		if str(d, "stack", "deploymentObjects", "nodes", 0, "id") != w.objA1 || dig(d, "stack", "deploymentObjects", "pageInfo", "hasNextPage") != false {
			t.Errorf("nested second page: %v", d)
		}
		// Target lists, paged in the API layer.
		d = w.ok(t, admin, `query($id: ID!) { agent(id: $id) { targets(first: 1) { totalCount pageInfo { hasNextPage endCursor } } } }`, map[string]any{"id": w.agent1.id})
		if num(d, "agent", "targets", "totalCount") != 1 || dig(d, "agent", "targets", "pageInfo", "hasNextPage") != false {
			t.Errorf("targets page: %v", d)
		}
	})

	t.Run("includeDeleted", func(t *testing.T) {
		// A stack soft-deleted by its generator: gone from normal reads,
		// listed for admins with includeDeleted, with its deletion marker.
		d := w.ok(t, w.genB.key, `mutation($id: ID!) { deleteStack(id: $id) { id deletedAt } }`, map[string]any{"id": w.stackB})
		if str(d, "deleteStack", "deletedAt") == "" {
			t.Fatalf("deleteStack: %v", d)
		}
		w.fails(t, admin, "NOT_FOUND", `query($id: ID!) { stack(id: $id) { id } }`, map[string]any{"id": w.stackB})
		d = w.ok(t, admin, `query($id: ID!) { stack(id: $id, includeDeleted: true) { id deletedAt
			deploymentObjects(includeDeleted: true) { nodes { isDeletionMarker deletedAt yamlChecksum } } } }`, map[string]any{"id": w.stackB})
		objs := list(d, "stack", "deploymentObjects", "nodes")
		if len(objs) != 2 || dig(objs[0], "isDeletionMarker") != true || str(objs[0], "yamlChecksum") != sha("") || str(objs[1], "deletedAt") == "" {
			t.Errorf("deleted stack's objects: %v", objs)
		}
		d = w.ok(t, admin, `{ live: stacks { totalCount } all: stacks(includeDeleted: true) { totalCount }
			gen: generators { nodes { stacks(includeDeleted: true) { totalCount } } } }`, nil)
		if num(d, "live", "totalCount") != 1 || num(d, "all", "totalCount") != 2 {
			t.Errorf("stacks includeDeleted: %v", d)
		}
		w.fails(t, w.genB.key, "FORBIDDEN", `{ stacks(includeDeleted: true) { totalCount } }`, nil)
		w.fails(t, w.genB.key, "FORBIDDEN", `query($id: ID!) { generator(id: $id) { stacks(includeDeleted: true) { totalCount } } }`, map[string]any{"id": w.genB.id})
	})
}
