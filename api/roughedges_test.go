package api_test

import (
	"strings"
	"testing"

	"github.com/brokkr/brokkr/api"
)

// updateGenerator tells an omitted rateLimitPerMinute (unchanged) from
// null (back to the server default, as the schema says), literal or
// variable; the limiter follows at once.
func TestUpdateGeneratorRateLimitNull(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{DefaultRateLimitPerMinute: 1000})
	limit := func(d map[string]any) any { return dig(d, "updateGenerator", "rateLimitPerMinute") }
	vars := map[string]any{"id": w.genA.id}

	d := w.ok(t, w.admin, `mutation($id: ID!) { updateGenerator(id: $id, input: {rateLimitPerMinute: 1}) { rateLimitPerMinute } }`, vars)
	if limit(d) != float64(1) {
		t.Fatalf("set to 1: %v", d)
	}
	d = w.ok(t, w.admin, `mutation($id: ID!) { updateGenerator(id: $id, input: {description: "d"}) { rateLimitPerMinute } }`, vars)
	if limit(d) != float64(1) {
		t.Fatalf("omitted: %v, want 1 kept", d)
	}
	w.ok(t, w.genA.key, `{ viewer { role } }`, nil)
	w.fails(t, w.genA.key, "RATE_LIMITED", `{ viewer { role } }`, nil)

	d = w.ok(t, w.admin, `mutation($id: ID!) { updateGenerator(id: $id, input: {rateLimitPerMinute: null}) { rateLimitPerMinute } }`, vars)
	if v, ok := dig(d, "updateGenerator").(map[string]any)["rateLimitPerMinute"]; !ok || v != nil {
		t.Fatalf("null: %v, want null", d)
	}
	// Back on the server default (1000 a minute): no longer limited.
	for range 5 {
		w.ok(t, w.genA.key, `{ viewer { role } }`, nil)
	}
	d = w.ok(t, w.admin, `query($id: ID!) { generator(id: $id) { rateLimitPerMinute } }`, vars)
	if v, ok := dig(d, "generator").(map[string]any)["rateLimitPerMinute"]; !ok || v != nil {
		t.Fatalf("read back: %v", d)
	}

	// The same through a variable: {} keeps, {"rateLimitPerMinute": null} resets.
	w.ok(t, w.admin, `mutation($id: ID!) { updateGenerator(id: $id, input: {rateLimitPerMinute: 7}) { id } }`, vars)
	byVar := `mutation($id: ID!, $in: UpdateGeneratorInput!) { updateGenerator(id: $id, input: $in) { rateLimitPerMinute } }`
	if d := w.ok(t, w.admin, byVar, map[string]any{"id": w.genA.id, "in": map[string]any{}}); limit(d) != float64(7) {
		t.Fatalf("variable without the field: %v, want 7 kept", d)
	}
	if d := w.ok(t, w.admin, byVar, map[string]any{"id": w.genA.id, "in": map[string]any{"rateLimitPerMinute": nil}}); limit(d) != nil {
		t.Fatalf("variable with null: %v, want null", d)
	}
	w.fails(t, w.admin, "BAD_USER_INPUT", byVar, map[string]any{"id": w.genA.id, "in": map[string]any{"rateLimitPerMinute": 0}})
}

// A generator's deleteStack answer shows the deletion marker it published
// as latestDeploymentObject, as an admin's does; the marker's stack is the
// deleted stack. Afterwards the generator no longer sees the stack.
func TestDeleteStackAnswerShowsMarker(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	const del = `mutation($id: ID!) { deleteStack(id: $id) {
		id deletedAt latestDeploymentObject { id isDeletionMarker yamlContent sequenceId stack { id name deletedAt } } } }`
	for _, c := range []struct {
		who, key, stack string
	}{
		{"generator", w.genA.key, w.stackA},
		{"admin", w.admin, w.stackB},
	} {
		d := w.ok(t, c.key, del, map[string]any{"id": c.stack})
		m := dig(d, "deleteStack", "latestDeploymentObject")
		if m == nil || dig(m, "isDeletionMarker") != true || str(m, "yamlContent") != "" || str(m, "stack", "id") != c.stack ||
			str(m, "stack", "deletedAt") == "" || str(d, "deleteStack", "deletedAt") == "" {
			t.Fatalf("%s's deleteStack: %v", c.who, d)
		}
		// The marker is the stack's newest object: what agents receive.
		all := w.ok(t, w.admin, `query($id: ID!) { stack(id: $id, includeDeleted: true) { latestDeploymentObject { id sequenceId } } }`, map[string]any{"id": c.stack})
		if str(all, "stack", "latestDeploymentObject", "id") != str(m, "id") ||
			num(all, "stack", "latestDeploymentObject", "sequenceId") != num(m, "sequenceId") {
			t.Fatalf("%s: the answer's marker %v is not the stack's latest object %v", c.who, m, all)
		}
	}
	r := w.gql(t, w.genA.key, `query($id: ID!) { stack(id: $id) { id } }`, map[string]any{"id": w.stackA})
	if dig(r.Data, "stack") != nil && r.code() == "" {
		t.Fatalf("the generator still sees its deleted stack: %s", r.Raw)
	}
}

// The schema documents the event vocabulary the reference agent reports.
func TestSchemaDocumentsEventVocabulary(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	d := w.ok(t, w.admin, `{
		event: __type(name: "AgentEvent") { description fields { name description } }
		input: __type(name: "ReportAgentEventInput") { description inputFields { name description } }
	}`, nil)
	text := func(v any) string {
		var b strings.Builder
		b.WriteString(str(v, "description"))
		for _, key := range []string{"fields", "inputFields"} {
			for _, f := range list(v, key) {
				b.WriteString(" " + str(f, "name") + ": " + str(f, "description"))
			}
		}
		return b.String()
	}
	for name, doc := range map[string]string{"AgentEvent": text(d["event"]), "ReportAgentEventInput": text(d["input"])} {
		for _, want := range []string{"DEPLOY", "SUCCESS", "FAILURE", "HEALTH"} {
			if !strings.Contains(doc, want) {
				t.Errorf("%s does not document %s: %s", name, want, doc)
			}
		}
	}
}
