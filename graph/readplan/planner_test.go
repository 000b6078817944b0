package readplan_test

import (
	"encoding/json"
	"testing"

	"github.com/brokkr/brokkr/api"
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
