package api_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
)

// pageWalk is a list read page by page: its query takes the cursor as $a;
// path leads from data to the connection.
type pageWalk struct {
	name  string
	query string
	vars  map[string]any
	path  []any
	roles []string
}

const walkSel = `{ totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } }`

// pageWalks walks every list to its end, each page asked with the
// executor's endCursor of the page before, then once more past the last
// cursor (an empty page), as several roles: every `after` a client can
// get from a previous page, on both servers.
func pageWalks(e *diffEnv) []diffJob {
	f := e.fx
	all := []string{"admin", "alpha", "beta", "edge-1", "idle"}
	gens := []string{"admin", "alpha", "beta"}
	walks := []pageWalk{
		{name: "generators", roles: gens, path: []any{"generators"}, query: `query($a: String) { generators(first: 2, after: $a) ` + walkSel + ` }`},
		{name: "deleted generators too", roles: []string{"admin"}, path: []any{"generators"},
			query: `query($a: String) { generators(first: 2, after: $a, includeDeleted: true) ` + walkSel + ` }`},
		{name: "stacks", roles: all, path: []any{"stacks"}, query: `query($a: String) { stacks(first: 2, after: $a) ` + walkSel + ` }`},
		{name: "deleted stacks too", roles: []string{"admin"}, path: []any{"stacks"},
			query: `query($a: String) { stacks(first: 3, after: $a, includeDeleted: true) ` + walkSel + ` }`},
		{name: "deploymentObjects", roles: all, path: []any{"deploymentObjects"},
			query: `query($a: String) { deploymentObjects(first: 3, after: $a) ` + walkSel + ` }`},
		{name: "agents", roles: all, path: []any{"agents"}, query: `query($a: String) { agents(first: 2, after: $a) ` + walkSel + ` }`},
		{name: "agentEvents", roles: all, path: []any{"agentEvents"}, query: `query($a: String) { agentEvents(first: 3, after: $a) ` + walkSel + ` }`},
		{name: "filtered agentEvents", roles: all, path: []any{"agentEvents"},
			query: `query($a: String) { agentEvents(first: 2, after: $a, filter: {eventType: "DEPLOY"}) ` + walkSel + ` }`},
		{name: "a stack's objects", roles: all, path: []any{"stack", "deploymentObjects"}, vars: map[string]any{"id": f.id("stack:alpha/web")},
			query: `query($a: String, $id: ID!) { stack(id: $id) { deploymentObjects(first: 2, after: $a) ` + walkSel + ` } }`},
		{name: "a stack's targets", roles: all, path: []any{"stack", "targets"}, vars: map[string]any{"id": f.id("stack:alpha/web")},
			query: `query($a: String, $id: ID!) { stack(id: $id) { targets(first: 1, after: $a) ` + walkSel + ` } }`},
		{name: "a stack's agents", roles: all, path: []any{"stack", "agents"}, vars: map[string]any{"id": f.id("stack:beta/cache")},
			query: `query($a: String, $id: ID!) { stack(id: $id) { agents(first: 1, after: $a) ` + walkSel + ` } }`},
		{name: "a generator's stacks", roles: gens, path: []any{"generator", "stacks"}, vars: map[string]any{"id": f.id("gen:alpha")},
			query: `query($a: String, $id: ID!) { generator(id: $id) { stacks(first: 1, after: $a) ` + walkSel + ` } }`},
		{name: "an agent's events", roles: all, path: []any{"agent", "events"}, vars: map[string]any{"id": f.id("agent:edge-1")},
			query: `query($a: String, $id: ID!) { agent(id: $id) { events(first: 2, after: $a) ` + walkSel + ` } }`},
		{name: "an agent's stacks", roles: all, path: []any{"agent", "stacks"}, vars: map[string]any{"id": f.id("agent:edge-1")},
			query: `query($a: String, $id: ID!) { agent(id: $id) { stacks(first: 2, after: $a) ` + walkSel + ` } }`},
		{name: "an agent's targets", roles: all, path: []any{"agent", "targets"}, vars: map[string]any{"id": f.id("agent:edge-2")},
			query: `query($a: String, $id: ID!) { agent(id: $id) { targets(first: 1, after: $a) ` + walkSel + ` } }`},
		{name: "an object's events", roles: all, path: []any{"deploymentObject", "events"}, vars: map[string]any{"id": f.id("obj:alpha/web#1")},
			query: `query($a: String, $id: ID!) { deploymentObject(id: $id) { events(first: 1, after: $a) ` + walkSel + ` } }`},
	}
	var jobs []diffJob
	for _, w := range walks {
		for _, role := range w.roles {
			jobs = append(jobs, func() ([]diffResult, error) { return e.main.walk(e.fx.keys, w, role) })
		}
	}
	return jobs
}

// walk asks w's pages as role until the executor's answer has no next page,
// then once more after its last cursor.
func (p diffPair) walk(keys map[string]string, w pageWalk, role string) ([]diffResult, error) {
	const maxPages = 40
	var out []diffResult
	var after any
	for page := 1; page <= maxPages; page++ {
		vars := maps.Clone(w.vars)
		if vars == nil {
			vars = map[string]any{}
		}
		vars["a"] = after
		res, err := p.compare(keys, diffRequest{name: fmt.Sprintf("pages of %s, page %d", w.name, page), role: role, query: w.query, vars: vars})
		if err != nil {
			return out, err
		}
		out = append(out, res)
		var d struct {
			Data map[string]any `json:"data"`
		}
		_ = json.Unmarshal(res.exec.body, &d)
		end, _ := dig(d.Data, append(w.path, "pageInfo", "endCursor")...).(string)
		if end == "" {
			break
		}
		after = end
		if dig(d.Data, append(w.path, "pageInfo", "hasNextPage")...) != true {
			// One more, after the last cursor: an empty page.
			vars := maps.Clone(vars)
			vars["a"] = end
			res, err := p.compare(keys, diffRequest{name: fmt.Sprintf("pages of %s, past the end", w.name), role: role, query: w.query, vars: vars})
			return append(out, res), err
		}
	}
	return out, nil
}

// checkPageWalks makes sure the walks walked: many reached the end of
// their list, and some took several pages to get there.
func checkPageWalks(t *testing.T, results []diffResult) {
	t.Helper()
	pages, past, longest := 0, 0, 0
	for _, r := range results {
		if strings.HasSuffix(r.req.name, "past the end") {
			past++
			continue
		}
		pages++
		var n int
		if _, err := fmt.Sscanf(r.req.name[strings.LastIndex(r.req.name, "page "):], "page %d", &n); err == nil {
			longest = max(longest, n)
		}
	}
	t.Logf("page walks: %d pages and %d reads past the last page compared; the longest walk took %d pages", pages, past, longest)
	if past < 20 || longest < 5 {
		t.Errorf("the page walks did not walk: %d reached the end, the longest took %d pages", past, longest)
	}
}
