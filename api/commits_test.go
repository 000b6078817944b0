package api_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/brokkr/brokkr/api"
)

// No answer hides a commit (issue 8, item 4): each mutation of a request is
// its own transaction, and the answer reports each one. A generator pushing
// several objects in one request, one of which fails, learns from the answer
// exactly which landed: the committed ones in data, the failed one as an
// error whose path is exactly its field (and null in data).
func TestMutationsReportEachCommit(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	const missing = "00000000-0000-0000-0000-000000000000"
	cases := []struct {
		name, b, code string
	}{
		{"not found", `{stackId: "` + missing + `", yamlContent: "n: 2\n"}`, "NOT_FOUND"},
		{"bad YAML", `{stackId: $s, yamlContent: "a: [\n"}`, "BAD_USER_INPUT"},
		// An argument that fails to parse is reported at its mutation's
		// path too (its name in extensions.field), not deeper.
		{"bad literal", `{stackId: "not-a-uuid", yamlContent: "n: 2\n"}`, "BAD_USER_INPUT"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stack := str(w.ok(t, w.genA.key, `mutation($n: String!) { createStack(input: {name: $n}) { id } }`,
				map[string]any{"n": fmt.Sprintf("batch-%d", i)}), "createStack", "id")
			r := w.gql(t, w.genA.key, `mutation($s: ID!) {
				a: createDeploymentObject(input: {stackId: $s, yamlContent: "n: 1\n"}) { id }
				b: createDeploymentObject(input: `+c.b+`) { id }
				c: createDeploymentObject(input: {stackId: $s, yamlContent: "n: 3\n"}) { id }
			}`, map[string]any{"s": stack})
			if len(r.Errors) != 1 || r.code() != c.code || !slices.Equal(r.Errors[0].Path, []any{"b"}) {
				t.Fatalf("want one %s error at path [b]: %s", c.code, r.Raw)
			}
			a, b, cc := str(r.Data, "a", "id"), dig(r.Data, "b"), str(r.Data, "c", "id")
			if a == "" || cc == "" || b != nil {
				t.Fatalf("want a and c in data and b null: %s", r.Raw)
			}
			// What the answer says landed is exactly what is stored.
			d := w.ok(t, w.genA.key, `query($s: ID!) { stack(id: $s) { deploymentObjects { nodes { id yamlContent } } } }`, map[string]any{"s": stack})
			var stored []string
			for _, n := range list(d, "stack", "deploymentObjects", "nodes") {
				stored = append(stored, str(n, "id"))
			}
			if !slices.Equal(stored, []string{cc, a}) {
				t.Fatalf("stored %v, the answer reported a=%s c=%s", stored, a, cc)
			}
		})
	}

	// An error deeper than a mutation's own path is about reading its
	// committed result: here the nested list's argument is refused after the
	// stack was deleted, and the deletion stands.
	t.Run("error reading a committed result", func(t *testing.T) {
		stack := str(w.ok(t, w.genA.key, `mutation { createStack(input: {name: "deep"}) { id } }`, nil), "createStack", "id")
		r := w.gql(t, w.genA.key, `mutation($s: ID!) { deleteStack(id: $s) { id deploymentObjects(first: 0) { totalCount } } }`, map[string]any{"s": stack})
		if len(r.Errors) != 1 || r.code() != "BAD_USER_INPUT" || len(r.Errors[0].Path) < 2 || r.Errors[0].Path[0] != "deleteStack" {
			t.Fatalf("want one BAD_USER_INPUT error below deleteStack: %s", r.Raw)
		}
		d := w.ok(t, w.genA.key, `{ stacks { nodes { id } } }`, nil)
		for _, n := range list(d, "stacks", "nodes") {
			if str(n, "id") == stack {
				t.Fatalf("the deletion did not commit: %v", d)
			}
		}
	})
}
