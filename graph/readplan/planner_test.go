package readplan_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/graph/readplan"
)

var roles = []string{"admin", "genA", "genB", "agent1", "agent2"}

const everyField = `
fragment G on Generator { __typename id name description isActive lastActiveAt rateLimitPerMinute createdAt updatedAt deletedAt }
fragment S on Stack { __typename id name description createdAt updatedAt deletedAt labels annotations { key value __typename } }
fragment D on DeploymentObject { __typename id sequenceId yamlContent yamlChecksum isDeletionMarker submittedAt createdAt deletedAt }
fragment A on Agent { __typename id name clusterName status lastHeartbeat createdAt updatedAt deletedAt labels annotations { key value } }
fragment E on AgentEvent { __typename id eventType status message createdAt deletedAt }
fragment P on PageInfo { __typename hasNextPage endCursor }
`

// The planner answers what the executor answers, byte for byte, for every
// field, each role, deleted rows, errors.
func TestPlannerAnswersAsExecutor(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.Config{})
	queries := []string{
		`{ viewer { __typename role generator { ...G } agent { ...A } } }` + everyField,
		`{ generators { __typename totalCount pageInfo { ...P } edges { __typename cursor node { ...G stacks { totalCount nodes { ...S generator { id } } } } } } }` + everyField,
		`{ stacks(first: 2) { totalCount pageInfo { ...P } nodes { ...S generator { ...G } latestDeploymentObject { ...D }
			deploymentObjects(first: 2) { totalCount pageInfo { ...P } edges { cursor node { ...D stack { id } events { totalCount nodes { ...E agent { id name } deploymentObject { id } } } } } }
			targets { totalCount pageInfo { ...P } edges { cursor node { __typename id createdAt agent { id } stack { id } } } }
			agents { totalCount pageInfo { ...P } edges { cursor node { ...A } } } } } }` + everyField,
		`{ agents { totalCount nodes { ...A targets { totalCount nodes { id stack { name } } } stacks(first: 1) { totalCount pageInfo { ...P } nodes { ...S } }
			desiredState { ...D } events(first: 1) { totalCount pageInfo { ...P } nodes { ...E } } } } }` + everyField,
		`{ agentEvents { totalCount nodes { ...E agent { name } deploymentObject { sequenceId stack { name } } } } deploymentObjects(first: 3) { totalCount nodes { ...D } } }` + everyField,
		`{ a: stacks(includeDeleted: true) { totalCount nodes { name deletedAt deploymentObjects(includeDeleted: true) { totalCount nodes { sequenceId isDeletionMarker deletedAt } } } }
		   b: generators(includeDeleted: true) { nodes { name stacks(includeDeleted: true) { totalCount } } } }`,
		`{ stacks(filter: {labels: ["prod"], annotations: [{key: "team", value: "core"}]}) { totalCount nodes { name } }
		   agents(filter: {status: ACTIVE, labels: "edge"}) { totalCount nodes { name } } }`,
		`{ generators(first: 0) { totalCount } }`,
		`{ stacks { nodes { deploymentObjects(first: 501) { totalCount } } } }`,
		`{ stacks(after: "bogus") { totalCount } }`,
		`{ stacks { nodes { targets(first: 0) { totalCount } } } }`,
	}
	for _, role := range roles {
		for _, q := range queries {
			f.same(t, role, q, nil)
		}
	}
	f.allPlanned(t)
}

// Single objects by id: one's own, another tenant's, deleted ones, with
// and without includeDeleted, and roles a field refuses.
func TestPlannerSingleObjects(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.Config{})
	q := `query($id: ID!, $d: Boolean) {
		stack(id: $id, includeDeleted: $d) { id name deletedAt generator { name } deploymentObjects { totalCount } }
		deploymentObject(id: $id, includeDeleted: $d) { id }
		agent(id: $id, includeDeleted: $d) { id name stacks { totalCount } }
		generator(id: $id, includeDeleted: $d) { id name stacks(includeDeleted: $d) { totalCount } } }`
	for _, role := range roles {
		for _, id := range []string{"A1", "A3", "B1", "C1", "A1/1", "A1/2", "agent1", "agent2", "agent3", "genA", "genB", "genC"} {
			for _, d := range []any{nil, true} {
				f.same(t, role, q, map[string]any{"id": f.ids[id].String(), "d": d})
			}
		}
	}
	f.allPlanned(t)
}

// Variables, aliases, fragments, @skip and @include, and __typename are
// collected as the executor collects them.
func TestPlannerSelections(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.Config{})
	q := `query($n: Int = 1, $skip: Boolean!, $f: StackFilter, $withLabels: Boolean = true) {
		__typename
		x: stacks(first: $n, filter: $f) { ...Conn }
		y: stacks(first: 3) { ...Conn nodes @skip(if: $skip) { id } }
		stacks { nodes { ... on Stack { name labels @include(if: $withLabels) } ...Lbl } edges { node { ...Lbl } } }
	}
	fragment Conn on StackConnection { __typename totalCount nodes { id ... on Stack { id name } } pageInfo { hasNextPage endCursor } }
	fragment Lbl on Stack { labels annotations { value } generator @skip(if: $skip) { name } }`
	for _, role := range roles {
		for _, vars := range []map[string]any{
			{"skip": false}, {"skip": true, "n": 2, "withLabels": false},
			{"skip": false, "f": map[string]any{"name": "A1"}},
			{"skip": true, "f": map[string]any{"labels": []string{"prod", "eu"}, "generatorId": f.ids["genA"].String()}},
			{"skip": false, "n": nil},
		} {
			f.same(t, role, q, vars)
		}
	}
	f.allPlanned(t)
}

// Cursors of every kind of list page onwards as the executor pages.
func TestPlannerCursors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.Config{})
	for _, role := range roles {
		var first struct {
			Data struct {
				Stacks struct {
					PageInfo struct{ EndCursor *string }
				}
				DeploymentObjects struct {
					PageInfo struct{ EndCursor *string }
				}
				AgentEvents struct {
					PageInfo struct{ EndCursor *string }
				}
				Agents struct {
					Nodes []struct {
						Stacks  struct{ PageInfo struct{ EndCursor *string } }
						Targets struct{ PageInfo struct{ EndCursor *string } }
					}
				}
			}
		}
		b := f.same(t, role, `{ stacks(first: 1) { pageInfo { endCursor } } deploymentObjects(first: 2) { pageInfo { endCursor } }
			agentEvents(first: 1) { pageInfo { endCursor } }
			agents(first: 1) { nodes { stacks(first: 1) { pageInfo { endCursor } } targets(first: 1) { pageInfo { endCursor } } } } }`, nil)
		must(t, json.Unmarshal(b, &first))
		d := first.Data
		cursors := []*string{d.Stacks.PageInfo.EndCursor, d.DeploymentObjects.PageInfo.EndCursor, d.AgentEvents.PageInfo.EndCursor}
		for _, a := range d.Agents.Nodes {
			cursors = append(cursors, a.Stacks.PageInfo.EndCursor, a.Targets.PageInfo.EndCursor)
		}
		q := `query($a: String) {
			stacks(after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { name
				deploymentObjects(after: $a, first: 1) { totalCount pageInfo { hasNextPage endCursor } nodes { sequenceId } } } } }
			deploymentObjects(after: $a) { totalCount pageInfo { hasNextPage } nodes { sequenceId events(after: $a) { totalCount } } }
			agentEvents(after: $a) { totalCount nodes { id } }
			agents { nodes { stacks(after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { cursor } }
				targets(after: $a) { totalCount edges { cursor } } } } }`
		for _, c := range cursors {
			if c != nil {
				f.same(t, role, q, map[string]any{"a": *c})
			}
		}
	}
	f.allPlanned(t)
}

// The row budget: the same answers, and the same refusals, at every
// budget from one row up. Which connection a refusal names is compared
// apart: when sibling relations pass the budget together, the executor
// names whichever of them its goroutines spend last (it varies from run to
// run: measured, three different names in 30 runs of one query), and the
// planner the first in document order (TestPlannerNamesFirstConnection).
func TestPlannerRowBudget(t *testing.T) {
	t.Parallel()
	queries := []string{
		`{ generators { nodes { name stacks { nodes { name labels deploymentObjects(first: 2) { nodes { sequenceId events { nodes { id agent { name } } } } } } } } } }`,
		`{ stacks { totalCount nodes { targets { totalCount } agents { nodes { name labels } } latestDeploymentObject { id } generator { name } } } }`,
		`{ agents { nodes { desiredState { id stack { name } } annotations { key } stacks(first: 1) { nodes { name } } } } }`,
		`{ stack(id: "%A1%") { labels annotations { key } } viewer { role } }`,
	}
	refusals := 0
	for budget := 1; budget <= 40; budget += 3 {
		f := newFixture(t, api.Config{RowBudget: budget})
		for _, q := range queries {
			q = strings.ReplaceAll(q, "%A1%", f.ids["A1"].String())
			for _, role := range []string{"admin", "agent1"} {
				_, pb := post(t, f.planned, f.keys[role], q, nil)
				_, eb := post(t, f.executor, f.keys[role], q, nil)
				if refused(pb) {
					refusals++
				}
				if !equalAnswers(t, anyConnection(pb), anyConnection(eb)) {
					t.Errorf("budget %d, %s: %s\nplanner:  %s\nexecutor: %s", budget, role, q, pb, eb)
				}
			}
		}
		f.allPlanned(t)
	}
	if refusals == 0 {
		t.Fatal("no query passed the budget")
	}
}

var connectionName = regexp.MustCompile(`reaches the [^ ]* connection|"connection":"[^"]*"`)

func refused(answer []byte) bool { return strings.Contains(string(answer), "ROW_BUDGET_EXCEEDED") }

// anyConnection is an answer with the connection a refusal names blanked.
func anyConnection(answer []byte) []byte {
	return connectionName.ReplaceAll(answer, []byte("…"))
}

// The planner names the first connection, in document order, of the level
// at which the budget runs out.
func TestPlannerNamesFirstConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.Config{RowBudget: 4})
	q := `{ stack(id: "%s") { a: labels b: annotations { key } } }`
	_, b := post(t, f.planned, f.keys["admin"], fmt.Sprintf(q, f.ids["A1"]), nil)
	// stack A1: 1 row, its labels 2 rows, its annotations 2 rows.
	want := `{"errors":[{"message":"By the time this query reaches the stack.b connection, it reads more than 4 rows, ` +
		"the row budget of one request: pass a smaller `first` to that connection, or to one above it.\"," +
		`"extensions":{"code":"ROW_BUDGET_EXCEEDED","connection":"stack.b","rowBudget":4}}],"data":null}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	q = `{ stack(id: "%s") { b: annotations { key } a: labels } }`
	_, b = post(t, f.planned, f.keys["admin"], fmt.Sprintf(q, f.ids["A1"]), nil)
	if !strings.Contains(string(b), `"connection":"stack.a"`) {
		t.Fatalf("got %s", b)
	}
}

// Each budgeted statement asks for the rows left plus one, as the
// executor's do: the events' statement, after 2 generators, 3 stacks and
// 6 objects were spent of 20 rows, asks for 10. (Not parallel: the hook
// sees every planner of the process.)
func TestPlannerAsksForRowsLeft(t *testing.T) {
	f := newFixture(t, api.Config{RowBudget: 20})
	var mu sync.Mutex
	var limits []any
	readplan.OnSend(func(sql string, args []any) {
		if strings.Contains(sql, "FROM agent_events AS e") && strings.Contains(sql, "LATERAL") {
			mu.Lock()
			limits = append(limits, args[len(args)-1])
			mu.Unlock()
		}
	})
	defer readplan.OnSend(nil)
	q := `{ generators { nodes { stacks { nodes { deploymentObjects(first: 2) { nodes { events { nodes { id } } } } } } } } }`
	f.same(t, "admin", q, nil)
	mu.Lock()
	defer mu.Unlock()
	if len(limits) != 1 || limits[0] != 10 {
		t.Fatalf("the events' statement asked for %v rows, want [10]", limits)
	}
}

// Where the executor's loaders batch the pages of objects read alone, a
// page field answers a sibling's error (graph.paged fails the batch
// whole); the planner answers the same. Fields read one after the other
// (a connection's nodes, then its edges) do not share.
func TestPlannerSharesBatchErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.Config{})
	for _, q := range []string{
		`query($id: ID!) { stack(id: $id) { a: deploymentObjects(includeDeleted: true) { totalCount } b: deploymentObjects { totalCount } } }`,
		`query($id: ID!) { stack(id: $id) { a: deploymentObjects(first: 0) { totalCount } b: deploymentObjects { totalCount } } }`,
		`query($id: ID!) { x: stack(id: $id) { deploymentObjects(first: 0) { totalCount } } y: stack(id: $id) { deploymentObjects { totalCount } } }`,
		`query($id: ID!) { stacks(first: 1) { nodes { deploymentObjects(first: 0) { totalCount } } edges { node { deploymentObjects { totalCount } } } } }`,
	} {
		for _, role := range []string{"admin", "genA"} {
			f.same(t, role, q, map[string]any{"id": f.ids["A1"].String()})
		}
	}
	_, b := post(t, f.planned, f.keys["genA"], `query($id: ID!) { stack(id: $id) { a: deploymentObjects(includeDeleted: true) { totalCount } b: deploymentObjects { totalCount } } }`,
		map[string]any{"id": f.ids["A1"].String()})
	if strings.Count(string(b), "includeDeleted is for admins") != 2 {
		t.Fatalf("want both fields to answer the sibling's error: %s", b)
	}
	f.allPlanned(t)
}

// Each connection prepares a statement once and keeps at most maxPrepared,
// deallocating the least recently used. (Not parallel: it sets the bound
// for the process.)
func TestPlannerPreparesOncePerConnection(t *testing.T) {
	defer readplan.SetMaxPrepared(readplan.SetMaxPrepared(2))
	f := newFixture(t, api.Config{})
	f.db.Bun.SetMaxOpenConns(1) // one connection: every statement meets the same cache
	shapes := map[string]string{"a": `{ generators { nodes { id } } }`, "b": `{ stacks { nodes { id } } }`, "c": `{ agents { nodes { id } } }`}
	prepares := func() float64 { return f.metric(t, "brokkr_read_planner_prepares_total") }
	before := prepares()
	// One statement each. With room for two: a, b prepared; a again (kept);
	// c evicts b; a kept; b prepared again, evicting c.
	for _, s := range []string{"a", "b", "a", "c", "a", "b"} {
		f.same(t, "admin", shapes[s], nil)
	}
	if n := prepares() - before; n != 4 {
		t.Fatalf("%v statements prepared, want 4", n)
	}
}

// What the planner does not serve goes to the executor whole, counted by
// reason: the answers are the executor's.
func TestPlannerFallsBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.Config{})
	for _, c := range []struct{ role, query, reason string }{
		{"admin", `{ __schema { queryType { name } } stacks { totalCount } }`, "field"},
		{"admin", `{ stack(id: "not-a-uuid") { id } }`, "argument"},
		{"admin", `{ stacks(filter: {name: "a\u0000b"}) { totalCount } }`, "argument"},
		{"admin", `{ stacks { nodes { ... @defer { name } } } }`, "defer"},
		{"", `{ stacks { totalCount } }`, "unauthenticated"},
	} {
		before := f.metric(t, `brokkr_read_planner_fallbacks_total{reason="`+c.reason+`"}`)
		f.same(t, c.role, c.query, nil)
		if f.metric(t, `brokkr_read_planner_fallbacks_total{reason="`+c.reason+`"}`) != before+1 {
			t.Errorf("%s: not counted as a fallback (%s)", c.query, c.reason)
		}
	}
	// Mutations are the executor's, not counted as fallbacks.
	before := f.metric(t, "brokkr_read_planner_fallbacks_total")
	post(t, f.planned, f.keys["admin"], `mutation { createGenerator(input: {name: "new"}) { generator { name } } }`, nil)
	if f.metric(t, "brokkr_read_planner_fallbacks_total") != before {
		t.Error("a mutation was counted as a fallback")
	}
}

// A plan is reused for the same document, variables and scope only: the
// same query alternately by two tenants, and with other variables, answers
// each as the executor does.
func TestPlannerReusesPlansPerScope(t *testing.T) {
	t.Parallel()
	f := newFixture(t, api.Config{})
	q := `query($n: Int) { stacks(first: $n) { totalCount nodes { name labels } } }`
	seen := map[string]string{}
	for _, c := range []struct {
		role string
		n    int
	}{{"genA", 5}, {"genB", 5}, {"genA", 5}, {"genA", 1}, {"genB", 5}} {
		b := string(f.same(t, c.role, q, map[string]any{"n": c.n}))
		key := fmt.Sprint(c.role, c.n)
		if prev, ok := seen[key]; ok && prev != b {
			t.Errorf("%s: another answer the second time:\n%s\n%s", key, prev, b)
		}
		seen[key] = b
	}
	if seen["genA5"] == seen["genB5"] || seen["genA5"] == seen["genA1"] {
		t.Fatalf("one answer for other scopes or variables: %v", seen)
	}
	f.allPlanned(t)
}
