package api_test

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/brokkr/brokkr/graph/querygen"
)

// defaultDiffSeeds is how many random documents each `make test` compares
// (seeds 1 to it); DIFF_SEEDS=n compares n instead.
const defaultDiffSeeds = 500

func diffSeeds(t *testing.T) int {
	t.Helper()
	v := os.Getenv("DIFF_SEEDS")
	if v == "" {
		return defaultDiffSeeds
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("DIFF_SEEDS=%q: want a positive number of seeds", v)
	}
	return n
}

// diffValues gives the random documents values that mean something in the
// fixture: ids of its rows (mostly of the right kind, sometimes of another
// kind, unknown or malformed), its cursors, names, labels and annotations,
// page sizes that stay under the row budget when nested (and sometimes
// out of range), includeDeleted now and then.
func diffValues(f *diffFixture, cursors map[string]string) func(querygen.Want) (any, bool) {
	kinds := map[string][]uuid.UUID{"generator": f.generators, "stack": f.stacks, "deploymentObject": f.objects,
		"agent": f.agents, "generatorId": f.generators, "stackId": f.stacks, "deploymentObjectId": f.objects, "agentId": f.agents}
	all := slices.Concat(f.generators, f.stacks, f.objects, f.agents, f.events, f.targets)
	pick := func(w querygen.Want, s []string) any { return s[w.Rand.IntN(len(s))] }
	pickInt := func(w querygen.Want, s []int) any { return s[w.Rand.IntN(len(s))] }
	id := func(w querygen.Want, own []uuid.UUID) any {
		switch p := w.Rand.Float64(); {
		case p < 0.75:
			return own[w.Rand.IntN(len(own))].String()
		case p < 0.87:
			return all[w.Rand.IntN(len(all))].String()
		case p < 0.95:
			return unknownID
		}
		return garbageID
	}
	strs := func(w querygen.Want, pool []string) any {
		out := make([]any, w.Rand.IntN(3))
		for i := range out {
			out[i] = pool[w.Rand.IntN(len(pool))]
		}
		return out
	}
	// after: mostly null or a cursor of the same kind of list, sometimes
	// another list's or garbage.
	names := slices.Sorted(maps.Keys(cursors))
	after := func(w querygen.Want) any {
		own := cursorKinds[w.Parent+"."+w.Field]
		switch p := w.Rand.Float64(); {
		case p < 0.3:
			return nil
		case p < 0.8 && len(own) > 0:
			return cursors["cursor of "+own[w.Rand.IntN(len(own))]]
		case p < 0.93:
			return cursors[names[w.Rand.IntN(len(names))]]
		}
		return pick(w, []string{"garbage", "", seqCursor(1 << 40)})
	}
	return func(w querygen.Want) (any, bool) {
		switch {
		case w.Name == "id" && w.Parent == "Query":
			return id(w, kinds[w.Field]), true
		case kinds[w.Name] != nil && w.Field == "":
			return id(w, kinds[w.Name]), true
		case w.Name == "first":
			if w.Depth <= 1 {
				return pickInt(w, []int{1, 2, 3, 5, 10, 50, 500, 1, 2, 3, 5, 10, 0, 501, -1}), true
			}
			return pickInt(w, []int{1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 0}), true
		case w.Name == "after":
			return after(w), true
		case w.Name == "includeDeleted":
			return w.Rand.Float64() < 0.15, true
		case w.Name == "name" && w.Parent == "StackFilter":
			return pick(w, []string{"web", "api", "cache", "old", "nope"}), true
		case w.Name == "name" && w.Parent == "GeneratorFilter":
			return pick(w, []string{"alpha", "beta", "gamma", "delta", "nope"}), true
		case w.Name == "name" && w.Parent == "AgentFilter":
			return pick(w, []string{"edge-1", "edge-2", "idle", "gone", "nope"}), true
		case w.Name == "clusterName":
			return pick(w, []string{"c-eu", "c-us", "c-new", "nope"}), true
		case w.Name == "eventType":
			return pick(w, []string{"DEPLOY", "HEALTH", "DELETE", "nope"}), true
		case w.Name == "status" && w.Parent == "AgentEventFilter":
			return pick(w, []string{"SUCCESS", "FAILURE", "PENDING", "nope"}), true
		case w.Name == "labels":
			return strs(w, []string{"prod", "eu", "us", "edge", "staging", "gpu", "nope"}), true
		case w.Name == "annotations":
			out := make([]any, w.Rand.IntN(3))
			for i := range out {
				kv := [][2]string{{"team", "core"}, {"region", "eu"}, {"tier", "1"}, {"team", "platform"}, {"region", "us"}}[w.Rand.IntN(5)]
				out[i] = map[string]any{"key": kv[0], "value": kv[1]}
			}
			return out, true
		}
		return nil, false
	}
}

// cursorKinds are the diffCursors of each list field's kind.
var cursorKinds = map[string][]string{
	"Query.stacks": {"stacks"}, "Generator.stacks": {"stacks"}, "Agent.stacks": {"agent.stacks"},
	"Query.generators": {"generators"}, "Query.deploymentObjects": {"deploymentObjects", "stack.deploymentObjects"},
	"Stack.deploymentObjects": {"deploymentObjects", "stack.deploymentObjects"},
	"Query.agents":            {"agents"}, "Stack.agents": {"stack.agents"},
	"Query.agentEvents": {"agentEvents", "agent.events", "object.events"}, "Agent.events": {"agentEvents", "agent.events", "object.events"},
	"DeploymentObject.events": {"agentEvents", "agent.events", "object.events"},
	"Stack.targets":           {"stack.targets", "other.targets", "agent.targets"}, "Agent.targets": {"stack.targets", "other.targets", "agent.targets"},
}

// randomRequests generates the documents of seeds 1..n, checks each with
// the server's validation rules (a document the generator got wrong fails
// the test here, not as an error both servers agree on), and asks each as
// a role of its seed.
func randomRequests(t *testing.T, e *diffEnv, n int) []diffRequest {
	t.Helper()
	s, err := diffSchema()
	if err != nil {
		t.Fatal(err)
	}
	cfg := querygen.Config{Schema: s, MaxDepth: 7, Values: diffValues(e.fx, e.cursors)}
	reqs := make([]diffRequest, 0, n)
	for seed := 1; seed <= n; seed++ {
		q := querygen.Generate(cfg, uint64(seed))
		doc, errs := gqlparser.LoadQueryWithRules(s, q.Text, diffRules())
		if errs != nil {
			t.Fatalf("seed %d: the generator wrote an invalid document: %v\n%s", seed, errs, q.Text)
		}
		if _, err := validator.VariableValues(s, doc.Operations[0], q.Variables); err != nil {
			t.Fatalf("seed %d: the generator wrote invalid variables %v: %v\n%s", seed, q.Variables, err, q.Text)
		}
		reqs = append(reqs, diffRequest{name: fmt.Sprintf("seed %d", seed), role: diffRoles[seed%len(diffRoles)],
			query: q.Text, vars: q.Variables, get: seed%7 == 0})
	}
	return reqs
}

// checkRandomShare fails when the random documents mostly end in errors
// (then they would compare little of the planner's work), or when the
// server refused one as invalid.
func checkRandomShare(t *testing.T, results []diffResult) {
	t.Helper()
	var shares [3]int
	for _, r := range results {
		shares[r.outcome]++
		for _, c := range r.codes {
			if c == "GRAPHQL_VALIDATION_FAILED" || c == "GRAPHQL_PARSE_FAILED" {
				t.Errorf("%s: the server refused a generated document (%s):\n%s\n%s", r.req.name, c, r.req.query, r.exec.body)
			}
		}
	}
	n := len(results)
	t.Logf("random documents: %d; data only %d (%.0f%%), data and errors %d (%.0f%%), errors only %d (%.0f%%)", n,
		shares[outData], pct(shares[outData], n), shares[outPartial], pct(shares[outPartial], n), shares[outErrors], pct(shares[outErrors], n))
	if n >= 50 && pct(shares[outErrors], n) > 50 {
		t.Errorf("%.0f%% of the random documents answer only errors: the generator's values miss the fixture", pct(shares[outErrors], n))
	}
}

func pct(k, n int) float64 { return 100 * float64(k) / float64(max(n, 1)) }
