package api_test

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// diffCase is one query of the differential corpus.
type diffCase struct {
	name  string
	query string
	vars  map[string]any
	op    string   // operationName, when the document has several
	roles []string // nil: every role of diffRoles
	get   bool     // also sent as GET
	// budget: served by the pair with a small row budget (diffRowBudget).
	budget bool
	// want, when set, is what the executor must answer, by role ("*" for
	// the others): "ok" (no errors) or an error code that must be among the
	// answer's. It keeps the corpus honest: a case meant to reach an error
	// (or data) that stops reaching it fails here rather than passing
	// vacuously.
	want map[string]string
}

// Every scalar field of each type, and __typename.
const (
	genScalars    = `__typename id name description isActive lastActiveAt rateLimitPerMinute createdAt updatedAt deletedAt`
	stackScalars  = `__typename id name description labels annotations { __typename key value } createdAt updatedAt deletedAt`
	objScalars    = `__typename id sequenceId yamlContent yamlChecksum isDeletionMarker submittedAt createdAt deletedAt`
	agentScalars  = `__typename id name clusterName status lastHeartbeat labels annotations { __typename key value } createdAt updatedAt deletedAt`
	eventScalars  = `__typename id eventType status message createdAt deletedAt`
	targetScalars = `__typename id createdAt`
	pageInfo      = `pageInfo { __typename hasNextPage endCursor }`
)

// conn is a whole connection selection around node fields.
func conn(node string) string {
	return fmt.Sprintf(`{ __typename totalCount %s edges { __typename cursor node { %s } } nodes { %s } }`, pageInfo, node, node)
}

// Cursors made by hand, in the format models writes (base64url of
// "<order tag>:<key>"): a deployment object list's, a created-at list's,
// and a deep past/future one.
func seqCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "s:%d", seq))
}

func createdCursor(usec int64, id string) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "c:%d:%s", usec, id))
}

func eventCursor(usec int64, id string) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "e:%d:%s", usec, id))
}

const (
	unknownID = "00000000-0000-4000-8000-000000000000"
	garbageID = "not-a-uuid"
)

var (
	adminOnly  = map[string]string{"admin": "ok", "*": "FORBIDDEN"}
	allOK      = map[string]string{"*": "ok"}
	adminOK    = map[string]string{"admin": "ok"}
	notFound   = map[string]string{"*": "NOT_FOUND"}
	badInput   = map[string]string{"*": "BAD_USER_INPUT"}
	generators = []string{"admin", "alpha", "beta", "epsilon"} // the roles that may read generators
)

// diffCorpus is the hand-written corpus over the fixture f; cursors are the
// real cursors the executor gave (diffCursors).
func diffCorpus(f *diffFixture, cur map[string]string) []diffCase {
	var cs []diffCase
	cs = append(cs, corpusRoots(f)...)
	cs = append(cs, corpusEdges(f)...)
	cs = append(cs, corpusFilters(f)...)
	cs = append(cs, corpusPaging(f, cur)...)
	cs = append(cs, corpusDocuments(f)...)
	cs = append(cs, corpusDeleted(f)...)
	cs = append(cs, corpusErrors(f)...)
	cs = append(cs, corpusBudget(f)...)
	return cs
}

// corpusRoots: every root field with every field of its type.
func corpusRoots(f *diffFixture) []diffCase {
	return []diffCase{
		{name: "viewer", want: allOK, get: true, query: `{ __typename viewer { __typename role generator { ` + genScalars +
			` stacks ` + conn(`id name`) + ` } agent { ` + agentScalars + ` desiredState { id sequenceId } } } }`},
		{name: "generators", roles: generators, want: allOK, query: `{ generators ` + conn(genScalars) + ` }`},
		{name: "generator alpha", want: map[string]string{"admin": "ok", "alpha": "ok", "beta": "NOT_FOUND", "edge-1": "FORBIDDEN"},
			query: `query($id: ID!) { generator(id: $id) { ` + genScalars + ` stacks ` + conn(`id name`) + ` } }`,
			vars:  map[string]any{"id": f.id("gen:alpha")}},
		{name: "generator epsilon", query: `query($id: ID!) { generator(id: $id) { ` + genScalars + ` stacks { totalCount nodes { id } } } }`,
			vars: map[string]any{"id": f.id("gen:epsilon")}},
		{name: "generator gamma (inactive)", query: `query($id: ID!) { generator(id: $id) { ` + genScalars + ` stacks { nodes { id name } } } }`,
			vars: map[string]any{"id": f.id("gen:gamma")}},
		{name: "stacks", want: adminOK, query: `{ stacks ` + conn(stackScalars+` generator { id name }`) + ` }`},
		{name: "stack alpha/web", want: map[string]string{"admin": "ok", "alpha": "ok", "beta": "NOT_FOUND", "idle": "NOT_FOUND",
			"edge-1": "NOT_FOUND"},
			get: true, query: `query($id: ID!) { stack(id: $id) { ` + stackScalars + ` generator { ` + genScalars + ` }
				deploymentObjects ` + conn(`id sequenceId`) + ` latestDeploymentObject { ` + objScalars + ` }
				targets ` + conn(targetScalars+` agent { id name } stack { id name }`) + ` agents ` + conn(`id name status`) + ` } }`,
			vars: map[string]any{"id": f.id("stack:alpha/web")}},
		{name: "stack beta/cache", query: `query($id: ID!) { stack(id: $id) { ` + stackScalars + ` latestDeploymentObject { id }
				targets { totalCount nodes { id agent { id name } } } agents { totalCount nodes { id } } } }`,
			vars: map[string]any{"id": f.id("stack:beta/cache")}},
		{name: "stack alpha/db (empty)", query: `query($id: ID!) { stack(id: $id) { ` + stackScalars + ` latestDeploymentObject { id }
				deploymentObjects ` + conn(`id`) + ` targets ` + conn(`id`) + ` agents ` + conn(`id`) + ` } }`,
			vars: map[string]any{"id": f.id("stack:alpha/db")}},
		{name: "deploymentObjects", want: adminOK, query: `{ deploymentObjects ` + conn(objScalars+` stack { id name }`) + ` }`},
		{name: "deploymentObject", query: `query($id: ID!) { deploymentObject(id: $id) { ` + objScalars + ` stack { ` + stackScalars + ` }
				events ` + conn(eventScalars+` agent { id name } deploymentObject { id }`) + ` } }`,
			vars: map[string]any{"id": f.id("obj:alpha/web#3")}},
		{name: "deploymentObject with escapes", query: `query($a: ID!, $b: ID!, $c: ID!, $d: ID!) {
				a: deploymentObject(id: $a) { yamlContent yamlChecksum } b: deploymentObject(id: $b) { yamlContent }
				c: deploymentObject(id: $c) { yamlContent } d: deploymentObject(id: $d) { yamlContent } }`,
			vars: map[string]any{"a": f.id("obj:alpha/web#2"), "b": f.id("obj:beta/web#1"), "c": f.id("obj:beta/web#2"), "d": f.id("obj:alpha/web#5")}},
		{name: "agents", want: allOK, query: `{ agents ` + conn(agentScalars) + ` }`},
		{name: "agent edge-1", query: `query($id: ID!) { agent(id: $id) { ` + agentScalars + `
				targets ` + conn(targetScalars+` stack { id name deletedAt } agent { id }`) + ` stacks ` + conn(`id name`) + `
				desiredState { ` + objScalars + ` stack { id } } events ` + conn(eventScalars) + ` } }`,
			vars: map[string]any{"id": f.id("agent:edge-1")}},
		{name: "agent idle (inactive)", query: `query($id: ID!) { agent(id: $id) { ` + agentScalars + ` targets { totalCount nodes { id stack { id } } }
				stacks { totalCount nodes { id } } desiredState { id } events { totalCount nodes { id message } } } }`,
			vars: map[string]any{"id": f.id("agent:idle")}},
		{name: "agent edge-2", query: `query($id: ID!) { agent(id: $id) { name desiredState { id isDeletionMarker stack { id name deletedAt } }
				stacks { nodes { id name } } targets { nodes { stack { name } } } } }`,
			vars: map[string]any{"id": f.id("agent:edge-2")}},
		{name: "agentEvents", want: adminOK, query: `{ agentEvents ` + conn(eventScalars+` agent { id name } deploymentObject { id sequenceId }`) + ` }`},
		{name: "introspection", get: true, query: `{ __typename __type(name: "Stack") { name kind fields { name } } __schema { queryType { name } } }`},
		{name: "introspection next to data", query: `{ __type(name: "AgentStatus") { enumValues { name } } agents(first: 2) { nodes { name status } } }`},
		// Not reads: both servers must leave them to the executor. Neither
		// writes (unknown ids), so the data stays the same.
		{name: "a mutation that fails", want: map[string]string{"admin": "NOT_FOUND", "edge-1": "FORBIDDEN"},
			query: fmt.Sprintf(`mutation { updateStack(id: %q, input: {name: "x"}) { id name labels } }`, unknownID)},
		{name: "a query and a mutation, the query chosen", op: "Read", query: fmt.Sprintf(`query Read { stacks(first: 1) { nodes { name } } }
			mutation Write { removeStackLabel(stackId: %q, label: "x") { id } }`, unknownID)},
		{name: "a subscription over HTTP", roles: []string{"admin", "edge-1"}, query: `subscription { agentEvents { id } }`},
	}
}

// corpusEdges: nested lists at every depth, every edge both ways.
func corpusEdges(f *diffFixture) []diffCase {
	deep := `{ generators(first: 3) { nodes { name stacks(first: 3) { totalCount nodes { name labels annotations { key value }
		generator { name } latestDeploymentObject { sequenceId }
		deploymentObjects(first: 3) { totalCount pageInfo { hasNextPage endCursor } nodes { sequenceId isDeletionMarker
			events(first: 2) { totalCount nodes { eventType status message agent { name labels
				events(first: 2) { nodes { id deploymentObject { id stack { name } } } } } } } } }
		targets { totalCount nodes { agent { name desiredState { sequenceId } } } }
		agents(first: 2) { totalCount pageInfo { hasNextPage } nodes { name stacks { nodes { name } } } } } } } } }`
	return []diffCase{
		{name: "dashboard, five levels", roles: generators, want: adminOK, query: deep},
		{name: "agents down to events", want: adminOK, query: `{ agents { nodes { name targets { nodes { stack { name
			deploymentObjects(first: 2) { nodes { sequenceId events { nodes { status agent { name } } } } } } } }
			stacks { edges { cursor node { name latestDeploymentObject { id } generator { name } } } }
			desiredState { sequenceId stack { name labels } events(first: 1) { nodes { id } } }
			events(first: 3) { totalCount edges { cursor node { deploymentObject { sequenceId stack { name } } } } } } } }`},
		{name: "events up to generators", want: adminOK, query: `{ agentEvents(first: 10) { nodes { id deploymentObject {
			stack { generator { name stacks(first: 1) { nodes { name } } } agents { nodes { name } } } } agent { targets { totalCount } } } } }`},
		{name: "objects both ways", want: adminOK, query: `{ deploymentObjects(first: 20) { edges { cursor node { sequenceId
			stack { name deploymentObjects(first: 1) { nodes { sequenceId } } latestDeploymentObject { sequenceId } }
			events { totalCount nodes { agent { name desiredState { id } } } } } } } }`},
		{name: "same stack under two parents", roles: []string{"admin", "alpha", "edge-1"}, query: `query($s: ID!, $a: ID!) {
			stack(id: $s) { targets { nodes { agent { stacks { nodes { id name } } } } } }
			agent(id: $a) { stacks { nodes { id name targets { nodes { agent { name } } } } } } }`,
			vars: map[string]any{"s": f.id("stack:alpha/web"), "a": f.id("agent:edge-1")}},
	}
}

// corpusFilters: every field of every filter, by literal and by variable.
func corpusFilters(f *diffFixture) []diffCase {
	var cs []diffCase
	for _, flt := range []string{`{}`, `{name: "web"}`, `{name: "nope"}`, fmt.Sprintf(`{generatorId: %q}`, f.id("gen:beta")),
		fmt.Sprintf(`{generatorId: %q}`, unknownID), `{labels: ["prod"]}`, `{labels: ["prod", "eu"]}`, `{labels: []}`,
		`{annotations: [{key: "team", value: "core"}]}`, `{annotations: [{key: "team", value: "core"}, {key: "tier", value: "2"}]}`,
		`{name: "web", labels: ["prod"], annotations: [{key: "team", value: "core"}]}`} {
		cs = append(cs, diffCase{name: "stacks(filter: " + flt + ")", want: adminOK,
			query: `{ stacks(filter: ` + flt + `) { totalCount nodes { id name generator { name } } } }`})
	}
	cs = append(cs, diffCase{name: "generator.stacks filters", roles: generators, query: `query($f: StackFilter) {
		generators { nodes { name stacks(filter: $f) { totalCount nodes { name labels } } } } }`,
		vars: map[string]any{"f": map[string]any{"labels": []string{"prod"}, "annotations": []map[string]any{{"key": "team", "value": "core"}}}}})
	for _, flt := range []string{`{}`, `{name: "edge-1"}`, `{clusterName: "c-eu"}`, `{status: ACTIVE}`, `{status: INACTIVE}`,
		`{labels: ["edge"]}`, `{labels: ["edge", "gpu"]}`, `{annotations: [{key: "region", value: "eu"}]}`,
		`{name: "idle", clusterName: "c-eu", status: INACTIVE, labels: ["edge"], annotations: [{key: "region", value: "eu"}]}`} {
		cs = append(cs, diffCase{name: "agents(filter: " + flt + ")", want: allOK,
			query: `{ agents(filter: ` + flt + `) { totalCount nodes { id name status } } }`})
	}
	cs = append(cs, diffCase{name: "agents filter by variable", query: `query($f: AgentFilter, $s: AgentStatus) {
		a: agents(filter: $f) { totalCount nodes { name } } b: agents(filter: {status: $s}) { totalCount } }`,
		vars: map[string]any{"s": "ACTIVE", "f": map[string]any{"name": "edge-2", "clusterName": "c-us", "status": "ACTIVE",
			"labels": []string{"edge"}, "annotations": []map[string]any{{"key": "region", "value": "us"}}}}})
	for _, flt := range []string{`{}`, fmt.Sprintf(`{stackId: %q}`, f.id("stack:alpha/web")), `{isDeletionMarker: true}`,
		`{isDeletionMarker: false}`, fmt.Sprintf(`{stackId: %q, isDeletionMarker: true}`, f.id("stack:alpha/old"))} {
		cs = append(cs, diffCase{name: "deploymentObjects(filter: " + flt + ")", want: allOK,
			query: `{ deploymentObjects(filter: ` + flt + `) { totalCount nodes { id sequenceId isDeletionMarker } }
				stacks { nodes { deploymentObjects(filter: ` + flt + `) { totalCount nodes { sequenceId } } } } }`})
	}
	cs = append(cs, diffCase{name: "generator filters", roles: generators, want: allOK, query: `query($f: GeneratorFilter) {
		a: generators(filter: {name: "alpha"}) { totalCount nodes { name } } b: generators(filter: {isActive: false}) { totalCount nodes { name } }
		c: generators(filter: {isActive: true, name: "beta"}) { nodes { name } } d: generators(filter: $f) { totalCount } }`,
		vars: map[string]any{"f": map[string]any{"name": "gamma", "isActive": false}}})
	for _, flt := range []string{`{}`, fmt.Sprintf(`{agentId: %q}`, f.id("agent:edge-1")),
		fmt.Sprintf(`{deploymentObjectId: %q}`, f.id("obj:alpha/web#1")), fmt.Sprintf(`{stackId: %q}`, f.id("stack:beta/web")),
		`{eventType: "DEPLOY"}`, `{status: "FAILURE"}`, `{eventType: "HEALTH", status: "SUCCESS"}`,
		fmt.Sprintf(`{agentId: %q, stackId: %q, eventType: "DEPLOY"}`, f.id("agent:edge-2"), f.id("stack:beta/cache"))} {
		cs = append(cs, diffCase{name: "agentEvents(filter: " + flt + ")", want: allOK,
			query: `{ agentEvents(filter: ` + flt + `) { totalCount nodes { id eventType status } }
				agents { nodes { events(filter: ` + flt + `) { totalCount nodes { id } } } }
				deploymentObjects(first: 8) { nodes { events(filter: ` + flt + `) { totalCount } } } }`})
	}
	cs = append(cs, diffCase{name: "event filter by variable", query: `query($f: AgentEventFilter!) { agentEvents(filter: $f) { totalCount nodes { id } } }`,
		vars: map[string]any{"f": map[string]any{"agentId": f.id("agent:edge-1"), "deploymentObjectId": f.id("obj:alpha/web#1"),
			"stackId": f.id("stack:alpha/web"), "eventType": "DEPLOY", "status": "SUCCESS"}}})
	cs = append(cs, diffCase{name: "object filter by variable", query: `query($f: DeploymentObjectFilter) { deploymentObjects(filter: $f) { totalCount nodes { id } } }`,
		vars: map[string]any{"f": map[string]any{"stackId": f.id("stack:alpha/phoenix"), "isDeletionMarker": false}}})
	return cs
}

// corpusPaging: first at its edges, cursors real, foreign and garbage.
func corpusPaging(f *diffFixture, cur map[string]string) []diffCase {
	var cs []diffCase
	for _, n := range []int{1, 2, 500} {
		cs = append(cs, diffCase{name: fmt.Sprintf("first: %d everywhere", n), want: allOK, query: fmt.Sprintf(`{
			stacks(first: %[1]d) { totalCount pageInfo { hasNextPage endCursor } nodes { name deploymentObjects(first: %[1]d) {
				totalCount pageInfo { hasNextPage endCursor } nodes { sequenceId events(first: %[1]d) { totalCount pageInfo { hasNextPage endCursor } } } }
				targets(first: %[1]d) { totalCount pageInfo { hasNextPage endCursor } nodes { id } }
				agents(first: %[1]d) { totalCount pageInfo { hasNextPage endCursor } nodes { id } } } }
			agents(first: %[1]d) { pageInfo { hasNextPage endCursor } nodes { stacks(first: %[1]d) { pageInfo { hasNextPage endCursor } nodes { id } }
				events(first: %[1]d) { pageInfo { hasNextPage endCursor } } targets(first: %[1]d) { pageInfo { hasNextPage } } } }
			agentEvents(first: %[1]d) { pageInfo { hasNextPage endCursor } edges { cursor } }
			deploymentObjects(first: %[1]d) { pageInfo { hasNextPage endCursor } edges { cursor } } }`, n)})
	}
	for _, n := range []int{0, 501, -1, -2147483648} {
		cs = append(cs, diffCase{name: fmt.Sprintf("first: %d", n), want: badInput, query: fmt.Sprintf(`{ stacks(first: %d) { totalCount } }`, n)})
		cs = append(cs, diffCase{name: fmt.Sprintf("nested first: %d", n), roles: []string{"admin", "alpha"}, want: badInput,
			query: fmt.Sprintf(`{ stacks { nodes { name deploymentObjects(first: %d) { totalCount } } } }`, n)})
	}
	cs = append(cs, diffCase{name: "first by variable", query: `query($a: Int, $b: Int!, $c: Int) {
		x: deploymentObjects(first: $a) { totalCount nodes { id } } y: agentEvents(first: $b) { nodes { id } } z: stacks(first: $c) { nodes { id } } }`,
		vars: map[string]any{"a": 3, "b": 2, "c": nil}})
	cs = append(cs, diffCase{name: "first too large for Int", roles: []string{"admin"}, query: `{ stacks(first: 3000000000) { totalCount } }`})

	// Pages walked with the executor's own cursors, and cursors of other lists.
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range cur {
			if !yield(k) {
				return
			}
		}
	})
	lists := map[string]string{
		"stacks":            `query($a: String) { stacks(first: 2, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { id name } } }`,
		"generators":        `query($a: String) { generators(first: 2, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { id name } } }`,
		"deploymentObjects": `query($a: String) { deploymentObjects(first: 3, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { sequenceId } } }`,
		"agents":            `query($a: String) { agents(first: 2, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { name } } }`,
		"agentEvents":       `query($a: String) { agentEvents(first: 4, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { id } } }`,
		"nested": `query($a: String, $s: ID!, $g: ID!, $ag: ID!, $o: ID!) {
			stack(id: $s) { deploymentObjects(first: 2, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { sequenceId } }
				targets(first: 1, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { id } }
				agents(first: 1, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { id } } }
			generator(id: $g) { stacks(first: 2, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { id } } }
			agent(id: $ag) { events(first: 2, after: $a) { pageInfo { hasNextPage endCursor } nodes { id } }
				stacks(first: 1, after: $a) { pageInfo { hasNextPage endCursor } nodes { id } }
				targets(first: 1, after: $a) { pageInfo { hasNextPage endCursor } nodes { id } } }
			deploymentObject(id: $o) { events(first: 1, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { id } } } }`,
	}
	after := append(names, "garbage", "empty", "seq-far", "seq-negative", "created-past", "created-future", "event-past", "wrong-tag", "bad-base64")
	made := map[string]string{"garbage": "garbage", "empty": "", "seq-far": seqCursor(1 << 40), "seq-negative": seqCursor(-5),
		"created-past": createdCursor(0, unknownID), "created-future": createdCursor(1<<52, f.id("gen:alpha")),
		"event-past": eventCursor(1<<52, unknownID), "wrong-tag": base64.RawURLEncoding.EncodeToString([]byte("x:1")), "bad-base64": "@@@"}
	for _, list := range slices.Sorted(func(yield func(string) bool) {
		for k := range lists {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, a := range after {
			c, ok := cur[a]
			if !ok {
				c = made[a]
			}
			vars := map[string]any{"a": c}
			if list == "nested" {
				vars["s"], vars["g"], vars["ag"], vars["o"] = f.id("stack:alpha/web"), f.id("gen:alpha"), f.id("agent:edge-1"), f.id("obj:alpha/web#1")
			}
			cs = append(cs, diffCase{name: "after " + a + " in " + list, query: lists[list], vars: vars,
				roles: []string{"admin", "alpha"}})
		}
	}
	return cs
}

// corpusDocuments: fragments, aliases, directives, variables, __typename,
// operation names.
func corpusDocuments(f *diffFixture) []diffCase {
	return []diffCase{
		{name: "named, inline and nested fragments", want: adminOK, query: `
			query Frag { stacks(first: 3) { ...StackPage } viewer { ... on Viewer { role ...ViewerGen } } }
			fragment StackPage on StackConnection { totalCount nodes { ...StackBits ... on Stack { labels ... { name } } } }
			fragment StackBits on Stack { id name generator { ...GenBits } deploymentObjects(first: 2) { nodes { ...ObjBits } } }
			fragment GenBits on Generator { name isActive }
			fragment ObjBits on DeploymentObject { sequenceId ... on DeploymentObject { events(first: 1) { nodes { ... { status } } } } }
			fragment ViewerGen on Viewer { generator { ...GenBits } agent { ... on Agent { name } } }`},
		{name: "fragment spread twice with overlapping fields", query: `{ stacks { nodes { ...A ...A id ... on Stack { id name } } } }
			fragment A on Stack { id name labels }`},
		{name: "aliases with different arguments", want: allOK, query: `{
			one: stacks(first: 1) { nodes { id } } two: stacks(first: 2) { nodes { id name } }
			prod: stacks(filter: {labels: ["prod"]}) { totalCount } stacks { totalCount }
			agents { nodes { all: events { totalCount } failed: events(filter: {status: "FAILURE"}) { totalCount nodes { id } }
				firstOne: events(first: 1) { nodes { aliasId: id } } } } }`},
		{name: "the same field twice, merged", query: `{ stacks { nodes { id } } stacks { totalCount nodes { name } } }`},
		{name: "@skip and @include literals", want: allOK, query: `{
			a: stacks @skip(if: true) { totalCount } b: stacks @include(if: false) { totalCount } c: stacks @include(if: true) @skip(if: false) { totalCount }
			agents { nodes { name @skip(if: true) id @include(if: true) labels @include(if: false) ... on Agent @skip(if: true) { status } ... @include(if: true) { clusterName } } } }`},
		{name: "@skip and @include variables", query: `query($yes: Boolean!, $no: Boolean!, $maybe: Boolean = true) {
			stacks @include(if: $yes) { nodes { id @skip(if: $yes) name @include(if: $maybe) labels @skip(if: $no) ...S @include(if: $no) } }
			agents @skip(if: $yes) { totalCount } }
			fragment S on Stack { description }`, vars: map[string]any{"yes": true, "no": false}},
		{name: "everything skipped", query: `query($s: Boolean!) { stacks @skip(if: $s) { totalCount } }`, vars: map[string]any{"s": true}},
		{name: "__typename alone and aliased", want: allOK, query: `{ __typename t: __typename stacks { __typename t2: __typename nodes { __typename } } }`},
		{name: "variables of every type", query: `query($id: ID!, $inc: Boolean!, $first: Int!, $after: String, $sf: StackFilter!, $af: AgentFilter,
				$df: DeploymentObjectFilter, $ef: AgentEventFilter, $gf: GeneratorFilter, $st: AgentStatus!, $labels: [String!], $ann: [AnnotationInput!]) {
			stack(id: $id, includeDeleted: $inc) { id }
			generators(first: $first, after: $after, filter: $gf, includeDeleted: $inc) { totalCount }
			stacks(filter: $sf) { totalCount } s2: stacks(filter: {labels: $labels, annotations: $ann}) { totalCount }
			agents(filter: $af) { totalCount } a2: agents(filter: {status: $st}) { totalCount }
			deploymentObjects(filter: $df) { totalCount } agentEvents(filter: $ef) { totalCount } }`,
			vars: map[string]any{"id": f.id("stack:alpha/old"), "inc": true, "first": 2, "after": nil, "sf": map[string]any{"name": "web"},
				"af": map[string]any{"status": "INACTIVE"}, "df": map[string]any{"isDeletionMarker": true}, "ef": map[string]any{"status": "SUCCESS"},
				"gf": map[string]any{"isActive": true}, "st": "ACTIVE", "labels": []string{"prod"},
				"ann": []map[string]any{{"key": "team", "value": "core"}}}, roles: []string{"admin", "alpha"}},
		{name: "variable defaults", query: `query($first: Int = 2, $f: StackFilter = {name: "web"}, $inc: Boolean = false) {
			stacks(first: $first, filter: $f, includeDeleted: $inc) { totalCount nodes { name } } }`},
		{name: "explicit nulls", want: allOK, query: `{ stacks(first: null, after: null, filter: null, includeDeleted: null) { totalCount nodes { name } }
			agents(filter: {name: null, labels: null, annotations: null, status: null}) { totalCount nodes { events(first: null, filter: null) { totalCount } } } }`},
		{name: "null and absent variables", query: `query($first: Int, $gone: Int, $inc: Boolean) {
			a: stacks(first: $first) { totalCount pageInfo { hasNextPage } } b: stacks(first: $gone, includeDeleted: $inc) { totalCount pageInfo { hasNextPage } } }`,
			vars: map[string]any{"first": nil, "inc": nil}},
		{name: "single values coerced to lists", query: `query($l: [String!], $a: [AnnotationInput!]) {
			a: stacks(filter: {labels: "prod", annotations: {key: "team", value: "core"}}) { totalCount }
			b: stacks(filter: {labels: $l, annotations: $a}) { totalCount } }`,
			vars: map[string]any{"l": "eu", "a": map[string]any{"key": "team", "value": "core"}}},
		{name: "an annotation variable in a list", query: `query($a: AnnotationInput!, $b: AnnotationInput!) {
			agents(filter: {annotations: [$a, $b]}) { totalCount nodes { name } } }`,
			vars: map[string]any{"a": map[string]any{"key": "region", "value": "eu"}, "b": map[string]any{"key": "rack", "value": "r1"}}},
		{name: "escapes in arguments", want: allOK, query: `{ stacks(filter: {name: "w\u0065b"}) { totalCount } s: stacks(filter: {name: "büro \"q\" <x> \\ \u2028 🚀"}) { nodes { name labels annotations { key value } } }
			l: stacks(filter: {labels: ["\u00fcn\u00ef"], annotations: [{key: "ключ", value: "値"}]}) { totalCount } }`},
		{name: "block string argument", query: "{ stacks(filter: {name: \"\"\"\n    web\n\"\"\"}) { totalCount } }"},
		{name: "duplicate labels and annotation keys in a filter", query: `{ stacks(filter: {labels: ["prod", "prod"], annotations: [{key: "team", value: "core"}, {key: "team", value: "platform"}]}) { totalCount } }`},
		{name: "101 labels in a filter", want: badInput, roles: []string{"admin", "alpha"}, query: `query($l: [String!]) { stacks(filter: {labels: $l}) { totalCount } }`,
			vars: map[string]any{"l": manyLabels(101)}},
		{name: "100 labels in a filter", want: allOK, roles: []string{"admin", "alpha"}, query: `query($l: [String!]) { stacks(filter: {labels: $l}) { totalCount } }`,
			vars: map[string]any{"l": manyLabels(100)}},
		{name: "operation chosen by name", op: "Second", want: allOK, query: `query First { agents { totalCount } } query Second { stacks { totalCount } }`},
		{name: "mixed roots", query: `query($g: ID!, $s: ID!, $o: ID!, $a: ID!, $e: ID!) { viewer { role } generator(id: $g) { name } stack(id: $s) { name }
			deploymentObject(id: $o) { sequenceId } agent(id: $a) { name } agentEvents(filter: {deploymentObjectId: $o}) { nodes { id } }
			events: agentEvents(filter: {agentId: $a}) { totalCount } e: agentEvents(filter: {status: "SUCCESS", agentId: $a, stackId: $s}) { totalCount }
			x: deploymentObjects(filter: {stackId: $s}) { totalCount } }`,
			vars: map[string]any{"g": f.id("gen:alpha"), "s": f.id("stack:alpha/web"), "o": f.id("obj:alpha/web#1"), "a": f.id("agent:edge-1"),
				"e": f.id("event:edge-1#1")}},
	}
}

// corpusDeleted: includeDeleted everywhere, deleted rows and markers.
func corpusDeleted(f *diffFixture) []diffCase {
	cs := []diffCase{
		{name: "includeDeleted at the top", want: adminOnly, query: `{ generators(includeDeleted: true) { totalCount nodes { name deletedAt } } }`,
			roles: generators},
		{name: "includeDeleted stacks", want: adminOnly, query: `{ stacks(includeDeleted: true) { totalCount nodes { name deletedAt
			deploymentObjects(includeDeleted: true) { totalCount nodes { sequenceId isDeletionMarker deletedAt yamlChecksum yamlContent } }
			latestDeploymentObject { id isDeletionMarker } targets { totalCount nodes { agent { name deletedAt } } } agents { nodes { name } } } } }`},
		{name: "includeDeleted objects and events", want: adminOnly, query: `{ deploymentObjects(includeDeleted: true) { totalCount nodes { id deletedAt
			events(includeDeleted: true) { totalCount nodes { id deletedAt agent { name deletedAt } } } } } }`},
		{name: "includeDeleted agents", want: adminOnly, query: `{ agents(includeDeleted: true) { totalCount nodes { name deletedAt labels annotations { key }
			events(includeDeleted: true) { totalCount nodes { id deletedAt } } targets { nodes { stack { name } } } desiredState { id } } } }`},
		{name: "includeDeleted events", want: adminOnly, query: `{ agentEvents(includeDeleted: true) { totalCount nodes { id deletedAt message } } }`},
		{name: "includeDeleted false explicitly", want: allOK, query: `{ agentEvents(includeDeleted: false) { totalCount } stacks(includeDeleted: false) { totalCount } }`},
		{name: "includeDeleted by variable", query: `query($d: Boolean!) { stacks(includeDeleted: $d) { totalCount } }`, vars: map[string]any{"d": true}, want: adminOnly},
		{name: "generator.stacks includeDeleted", roles: generators, query: `{ generators { nodes { name stacks(includeDeleted: true) { totalCount nodes { name deletedAt } } } } }`},
	}
	for _, one := range []struct{ field, id string }{{"generator", "gen:delta"}, {"stack", "stack:alpha/old"}, {"stack", "stack:delta/a"},
		{"deploymentObject", "obj:alpha/web#2"}, {"deploymentObject", "obj:delta/a#1"}, {"agent", "agent:gone"}} {
		sel := "id deletedAt"
		switch one.field {
		case "stack":
			sel += " name labels annotations { key value } latestDeploymentObject { isDeletionMarker sequenceId } deploymentObjects(includeDeleted: true) { nodes { isDeletionMarker deletedAt } } generator { name deletedAt }"
		case "agent":
			sel += " name events(includeDeleted: true) { totalCount nodes { deletedAt } } targets { totalCount } stacks { totalCount } desiredState { id } labels"
		case "generator":
			sel += " name stacks(includeDeleted: true) { totalCount nodes { name deletedAt } }"
		case "deploymentObject":
			sel += " sequenceId stack { name deletedAt } events(includeDeleted: true) { totalCount }"
		}
		cs = append(cs,
			diffCase{name: one.field + " " + one.id + " (deleted)", want: map[string]string{"admin": "NOT_FOUND"},
				query: fmt.Sprintf(`query($id: ID!) { %s(id: $id) { %s } }`, one.field, sel), vars: map[string]any{"id": f.id(one.id)}},
			diffCase{name: one.field + " " + one.id + " (deleted, includeDeleted)", want: map[string]string{"admin": "ok"},
				query: fmt.Sprintf(`query($id: ID!) { %s(id: $id, includeDeleted: true) { %s } }`, one.field, sel), vars: map[string]any{"id": f.id(one.id)}})
	}
	cs = append(cs, diffCase{name: "phoenix: deleted and restored", query: `query($id: ID!) { stack(id: $id) { name deletedAt
		latestDeploymentObject { sequenceId isDeletionMarker yamlContent }
		all: deploymentObjects(includeDeleted: true) { totalCount nodes { sequenceId isDeletionMarker deletedAt submittedAt } }
		live: deploymentObjects { totalCount nodes { sequenceId } } markers: deploymentObjects(filter: {isDeletionMarker: true}) { totalCount } } }`,
		vars: map[string]any{"id": f.id("stack:alpha/phoenix")}})
	return cs
}

// corpusErrors: foreign and unknown ids, bad arguments, errors inside lists.
func corpusErrors(f *diffFixture) []diffCase {
	cs := []diffCase{
		{name: "unknown ids", want: notFound, query: fmt.Sprintf(`{ stack(id: %[1]q) { id } agent(id: %[1]q) { id } deploymentObject(id: %[1]q) { id } }`, unknownID)},
		{name: "unknown generator", roles: generators, want: notFound, query: fmt.Sprintf(`{ generator(id: %q) { id } }`, unknownID)},
		{name: "garbage id", want: badInput, query: fmt.Sprintf(`{ stack(id: %q) { id } }`, garbageID)},
		{name: "garbage id by variable", query: `query($id: ID!) { agent(id: $id) { id } }`, vars: map[string]any{"id": garbageID}},
		{name: "garbage ids in filters", query: fmt.Sprintf(`{ stacks(filter: {generatorId: %[1]q}) { totalCount } deploymentObjects(filter: {stackId: %[1]q}) { totalCount }
			agentEvents(filter: {agentId: %[1]q}) { totalCount } }`, garbageID)},
		{name: "errors inside a list (includeDeleted)", roles: []string{"alpha", "beta", "edge-1"}, want: map[string]string{"*": "FORBIDDEN"},
			query: `{ stacks { totalCount nodes { name deploymentObjects(includeDeleted: true) { totalCount } labels } } }`},
		{name: "errors inside a list (after)", roles: []string{"admin", "beta"}, query: `{ agents { nodes { name events(after: "garbage") { totalCount } id } } }`},
		{name: "errors inside a nested list", roles: []string{"admin", "alpha"}, query: `{ generators { nodes { name stacks { nodes { name
			deploymentObjects(first: 1) { nodes { events(first: 0) { totalCount } sequenceId } } } } } } }`},
		{name: "error next to data", roles: []string{"admin", "alpha"}, query: `{ viewer { role } stacks { totalCount } agentEvents(first: 0) { totalCount } generators { totalCount } }`},
		{name: "no key", roles: []string{"none"}, query: `{ stacks { totalCount } }`},
		{name: "no key, introspection", roles: []string{"none"}, query: `{ __typename }`},
		{name: "validation error", want: map[string]string{"*": "GRAPHQL_VALIDATION_FAILED"}, query: `{ stacks { nope } }`},
		{name: "parse error", want: map[string]string{"*": "GRAPHQL_PARSE_FAILED"}, query: `{ stacks { `},
		{name: "missing variable", query: `query($id: ID!) { stack(id: $id) { id } }`},
		{name: "variable of the wrong type", query: `query($n: Int!) { stacks(first: $n) { totalCount } }`, vars: map[string]any{"n": "three"}},
		{name: "unknown operation name", op: "Nope", query: `query A { stacks { totalCount } } query B { agents { totalCount } }`},
		{name: "too deep for the limits", roles: []string{"admin"}, query: `{ agents { nodes { stacks { nodes { deploymentObjects { nodes { events { nodes {
			deploymentObject { stack { agents { nodes { events { nodes { agent { name } } } } } } } } } } } } } } } }`},
		{name: "deep but within the limits", roles: []string{"admin", "edge-1"}, query: `{ agents(first: 1, filter: {name: "edge-1"}) { nodes { stacks(first: 1) { nodes {
			deploymentObjects(first: 4) { nodes { events(first: 1) { nodes { deploymentObject { stack { agents(first: 1) { nodes { name } } } } } } } } } } } } }`},
	}
	// Every root read of another tenant's or an invisible object.
	for _, id := range []string{"stack:beta/web", "stack:alpha/web", "stack:gamma/legacy"} {
		cs = append(cs, diffCase{name: "foreign " + id, query: `query($id: ID!) { stack(id: $id) { id name labels deploymentObjects { totalCount } } }`,
			vars: map[string]any{"id": f.id(id)}})
	}
	for _, id := range []string{"obj:beta/cache#1", "obj:alpha/api#2", "obj:gamma/legacy#1"} {
		cs = append(cs, diffCase{name: "foreign " + id, query: `query($id: ID!) { deploymentObject(id: $id) { id events { totalCount } stack { name } } }`,
			vars: map[string]any{"id": f.id(id)}})
	}
	for _, id := range []string{"agent:edge-2", "agent:fresh", "agent:idle"} {
		cs = append(cs, diffCase{name: "foreign " + id, query: `query($id: ID!) { agent(id: $id) { id name events { totalCount } desiredState { id } } }`,
			vars: map[string]any{"id": f.id(id)}})
	}
	cs = append(cs, diffCase{name: "foreign generator", roles: generators, query: `query($id: ID!) { generator(id: $id) { id stacks { totalCount } } }`,
		vars: map[string]any{"id": f.id("gen:beta")}})
	return cs
}

// corpusBudget: queries past the row budget (diffRowBudget rows). The
// executor names the connection where the budget ran out by whichever read
// passed it first; when two connections of different names could be the
// one (objects and their events, read as the objects' pages arrive), which
// one is a race between its goroutines and its loaders' batches. So each
// case here has one connection that can run out, and its name is certain.
func corpusBudget(f *diffFixture) []diffCase {
	exceeded := map[string]string{"admin": "ROW_BUDGET_EXCEEDED"}
	return []diffCase{
		{name: "budget: fits", budget: true, want: allOK, roles: generators, query: `{ generators(first: 3) { nodes { name } } }`},
		{name: "budget: a long top-level list", budget: true, want: exceeded, query: `{ deploymentObjects(first: 100) { nodes { id } } }`},
		{name: "budget: events", budget: true, want: exceeded, query: `{ agentEvents(first: 100) { totalCount nodes { id } } }`},
		{name: "budget: nested", budget: true, want: exceeded, query: `{ stacks { nodes { deploymentObjects { nodes { id } } } } }`},
		{name: "budget: nested under an alias", budget: true, want: exceeded,
			query: `{ stacks(first: 5) { nodes { objs: deploymentObjects(first: 5) { nodes { id } } } } }`},
		{name: "budget: single objects", budget: true, want: exceeded, query: `{ agentEvents(first: 10) { nodes { agent { name } } } }`},
		{name: "budget: single objects fit", budget: true, want: map[string]string{"admin": "ok"}, query: `{ agentEvents(first: 5) { nodes { agent { name } } } }`},
		{name: "budget: labels", budget: true, want: exceeded, query: `{ stacks(includeDeleted: true) { nodes { labels } } }`},
		{name: "budget: one parent", budget: true, query: `query($id: ID!) { agent(id: $id) { events(first: 100) { nodes { id } } } }`,
			vars: map[string]any{"id": f.id("agent:edge-1")}},
	}
}

func manyLabels(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("l%d", i)
	}
	return out
}

// checkCorpusExpectations checks each case's want against the executor's
// answers.
func checkCorpusExpectations(t *testing.T, cases []diffCase, results []diffResult) {
	t.Helper()
	byName := map[string]diffCase{}
	for _, c := range cases {
		if _, dup := byName[c.name]; dup {
			t.Errorf("corpus: two cases named %q", c.name)
		}
		byName[c.name] = c
	}
	for _, r := range results {
		c := byName[r.req.name]
		want, ok := c.want[r.req.role]
		if !ok {
			want, ok = c.want["*"]
		}
		if !ok {
			continue
		}
		got := strings.Join(r.codes, ",")
		if want == "ok" && len(r.codes) > 0 || want != "ok" && !slices.Contains(r.codes, want) {
			t.Errorf("corpus %q as %s: the executor answered %q, the case expects %s:\n%s", c.name, r.req.role, got, want, truncate(string(r.exec.body), 1500))
		}
	}
}
