package graph

import (
	"context"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
)

// operation parses and validates query (with vars) against the schema.
func operation(t *testing.T, query string, vars map[string]any) *graphql.OperationContext {
	t.Helper()
	exec := executor.New(NewExecutableSchema(Config{Resolvers: &Resolver{}}))
	oc, errs := exec.CreateOperationContext(graphql.StartOperationTrace(context.Background()), &graphql.RawParams{Query: query, Variables: vars})
	if errs != nil {
		t.Fatalf("%s: %v", query, errs)
	}
	return oc
}

// Subscriptions that ask the same fields of a deployment object share one
// key, whatever values come (the root field's arguments) and however the
// fields are written (fragments, @include); anything else has its own.
func TestShareKey(t *testing.T) {
	t.Parallel()
	agent := `subscription($after: Int64) { agentDeploymentObjects(after: $after) { id sequenceId isDeletionMarker yamlContent stack { id } } }`
	key := func(q string, vars map[string]any) string { return ShareKey(operation(t, q, vars)) }
	base := key(agent, map[string]any{"after": 0})
	if base == "" {
		t.Fatal("an agent's feed fields are not shared")
	}
	same := []struct {
		name, q string
		vars    map[string]any
	}{
		{"another after", agent, map[string]any{"after": 41}},
		{"no after", agent, nil},
		{"a fragment", `subscription { agentDeploymentObjects { ...F } } fragment F on DeploymentObject { id sequenceId isDeletionMarker yamlContent stack { id } }`, nil},
		{"@include(if: true)", `subscription($y: Boolean!) { agentDeploymentObjects { id sequenceId isDeletionMarker yamlContent @include(if: $y) stack { id } } }`, map[string]any{"y": true}},
	}
	for _, c := range same {
		if got := key(c.q, c.vars); got != base {
			t.Errorf("%s: key %q, want %q", c.name, got, base)
		}
	}
	differ := map[string]string{
		"fewer fields":     `subscription { agentDeploymentObjects { id sequenceId } }`,
		"another order":    `subscription { agentDeploymentObjects { sequenceId id isDeletionMarker yamlContent stack { id } } }`,
		"an alias":         `subscription { feed: agentDeploymentObjects { id sequenceId isDeletionMarker yamlContent stack { id } } }`,
		"a field alias":    `subscription { agentDeploymentObjects { key: id sequenceId isDeletionMarker yamlContent stack { id } } }`,
		"the stack's feed": `subscription($s: ID!) { stackDeploymentObjects(stackId: $s) { id sequenceId isDeletionMarker yamlContent stack { id } } }`,
	}
	for name, q := range differ {
		vars := map[string]any{"s": "00000000-0000-0000-0000-000000000001"}
		if got := key(q, vars); got == "" || got == base {
			t.Errorf("%s: key %q, want one of its own", name, got)
		}
	}
	// What depends on who asks, or on reads of the request, is never shared.
	for name, q := range map[string]string{
		"events":          `subscription { agentDeploymentObjects { id events { totalCount } } }`,
		"stack generator": `subscription { agentDeploymentObjects { id stack { generator { id } } } }`,
		"stack labels":    `subscription { agentDeploymentObjects { id stack { labels } } }`,
		"target changes":  `subscription { agentTargetChanges { action stackId } }`,
		"agent events":    `subscription { agentEvents { id } }`,
	} {
		if got := key(q, nil); got != "" {
			t.Errorf("%s: shared under %q", name, got)
		}
	}
	if got := ShareKey(operation(t, `{ viewer { role } }`, nil)); got != "" {
		t.Errorf("a query is shared under %q", got)
	}
}

// Every mutation of the schema is either one that wakes the feed or one
// that is quiet for it: a new mutation cannot be forgotten.
func TestEveryMutationWakesTheFeedOrIsQuiet(t *testing.T) {
	t.Parallel()
	es := NewExecutableSchema(Config{Resolvers: &Resolver{}})
	n := 0
	for _, f := range es.Schema().Mutation.Fields {
		if f.Name == "__typename" {
			continue
		}
		n++
		if wakesFeed[f.Name] == quietForFeed[f.Name] {
			t.Errorf("mutation %s: in wakesFeed %v, in quietForFeed %v; want exactly one", f.Name, wakesFeed[f.Name], quietForFeed[f.Name])
		}
	}
	if n != len(wakesFeed)+len(quietForFeed) {
		t.Errorf("%d mutations in the schema, %d classified: a name in the lists is not a mutation", n, len(wakesFeed)+len(quietForFeed))
	}
}
