package api_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/99designs/gqlgen/graphql"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/graph"
)

// wakeRecorder is a feed that records which mutation woke it (Published);
// it serves no subscription.
type wakeRecorder struct {
	graph.Feed // nil: subscriptions are not what this test asks
	mu         sync.Mutex
	woke       []string
}

func (r *wakeRecorder) Published(ctx context.Context) {
	name := "?"
	if fc := graphql.GetRootFieldContext(ctx); fc != nil {
		name = fc.Field.Name
	}
	r.mu.Lock()
	r.woke = append(r.woke, name)
	r.mu.Unlock()
}

func (r *wakeRecorder) Listening() bool { return true }

// take returns what woke the feed since the last take.
func (r *wakeRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.woke
	r.woke = nil
	return out
}

// A mutation of each kind that changes what subscribers receive wakes the
// feed once it has committed (graph.FeedWake), whoever sends it; a
// mutation that failed, or one that changes nothing a subscriber receives
// at once, does not. Several mutations of one request wake it each.
func TestMutationsWakeTheFeed(t *testing.T) {
	t.Parallel()
	rec := &wakeRecorder{}
	w := newWorld(t, api.Config{Feed: rec})
	admin, gen := w.admin, w.genA.key
	v := func(kv ...string) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	rec.take() // the world's own making
	tmpGen := str(w.ok(t, admin, `mutation { createGenerator(input: {name: "tmp"}) { generator { id } } }`, nil), "createGenerator", "generator", "id")
	tmpStack := str(w.ok(t, gen, `mutation { createStack(input: {name: "tmp"}) { id } }`, nil), "createStack", "id")
	tmpAgent := str(w.ok(t, admin, `mutation { createAgent(input: {name: "tmp", clusterName: "c"}) { agent { id } } }`, nil), "createAgent", "agent", "id")
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("creating a generator, a stack and an agent woke the feed: %v", got)
	}
	for _, m := range []struct{ key, query string }{
		{gen, `mutation($s: ID!) { createDeploymentObject(input: {stackId: $s, yamlContent: "x: 1"}) { id } }`},
		{gen, `mutation($s: ID!, $o: ID!) { rollbackStack(stackId: $s, toDeploymentObjectId: $o) { id } }`},
		{gen, `mutation($o: ID!) { deleteDeploymentObject(id: $o) { id } }`},
		{gen, `mutation($t: ID!) { deleteStack(id: $t) { id } }`},
		{admin, `mutation($t: ID!) { restoreStack(id: $t) { id } }`},
		{admin, `mutation($g: ID!) { deleteGenerator(id: $g) { id } }`},
		{admin, `mutation($g: ID!) { restoreGenerator(id: $g) { id } }`},
		{gen, `mutation($a: ID!, $s: ID!) { addAgentTarget(agentId: $a, stackId: $s) { id } }`},
		{gen, `mutation($a: ID!, $s: ID!) { removeAgentTarget(agentId: $a, stackId: $s) { id } }`},
		{admin, `mutation($n: ID!) { updateAgent(id: $n, input: {status: ACTIVE}) { id } }`},
		{admin, `mutation($n: ID!) { rotateAgentKey(id: $n) { apiKey } }`},
		{admin, `mutation($n: ID!) { deleteAgent(id: $n) { id } }`},
		{admin, `mutation($n: ID!) { restoreAgent(id: $n) { id } }`},
		{w.agent1.key, `mutation($e: ID!) { reportAgentEvent(input: {deploymentObjectId: $e, eventType: "DEPLOY", status: "SUCCESS"}) { id } }`},
	} {
		d := w.ok(t, m.key, m.query, v("s", w.stackA, "o", w.objA1, "e", w.objA2, "t", tmpStack, "g", tmpGen, "a", w.agent2.id, "n", tmpAgent))
		var name string
		for k := range d {
			name = k
		}
		if got := rec.take(); !slices.Equal(got, []string{name}) {
			t.Errorf("%s woke the feed %v times (%v), want once", name, len(got), got)
		}
	}
	// Two in one request: each wakes it, in order.
	w.ok(t, gen, `mutation($s: ID!) {
		a: createDeploymentObject(input: {stackId: $s, yamlContent: "x: 2"}) { id }
		b: createDeploymentObject(input: {stackId: $s, yamlContent: "x: 3"}) { id } }`, v("s", w.stackA))
	if got := rec.take(); !slices.Equal(got, []string{"createDeploymentObject", "createDeploymentObject"}) {
		t.Errorf("two objects in one request woke the feed %v", got)
	}
	// Refused or failed mutations did not commit: no wake-up.
	w.fails(t, gen, "NOT_FOUND", `mutation($t: ID!) { deleteStack(id: $t) { id } }`, v("t", "00000000-0000-0000-0000-000000000001"))
	w.fails(t, w.agent1.key, "FORBIDDEN", `mutation($s: ID!) { createDeploymentObject(input: {stackId: $s, yamlContent: "x: 4"}) { id } }`, v("s", w.stackA))
	w.ok(t, gen, `mutation($s: ID!) { addStackLabel(stackId: $s, label: "quiet") { id } }`, v("s", w.stackA))
	w.ok(t, w.agent1.key, `mutation { agentHeartbeat { id } }`, nil)
	if got := rec.take(); len(got) != 0 {
		t.Errorf("failed or quiet mutations woke the feed: %v", got)
	}
}
