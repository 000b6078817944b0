package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/brokkr/brokkr/api"
)

// A generator's rate limit weighs what a request does (issue 8, item 3):
// each mutation field it runs spends a token, aliases included and after
// fragments and @skip/@include; a request whose mutations need more tokens
// than are left is refused whole, before any runs, with HTTP 429, a
// Retry-After header and extensions.retryAfter; one that needs more than
// the bucket ever holds is refused as bad input. A normal request is served
// right after, and other callers are not affected.
func TestRateLimitWeighsMutations(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{DefaultRateLimitPerMinute: 1000})
	// 10 a minute: a token comes back every 6 s, far more than the few
	// requests below take even on a loaded machine.
	w.ok(t, w.admin, `mutation($id: ID!) { updateGenerator(id: $id, input: {rateLimitPerMinute: 10}) { id } }`, map[string]any{"id": w.genA.id})
	stack := str(w.ok(t, w.admin, `mutation($g: ID!) { createStack(input: {name: "limited", generatorId: $g}) { id } }`,
		map[string]any{"g": w.genA.id}), "createStack", "id")
	count := func() int {
		t.Helper()
		return int(num(w.ok(t, w.admin, `query($s: ID!) { stack(id: $s) { deploymentObjects { totalCount } } }`,
			map[string]any{"s": stack}), "stack", "deploymentObjects", "totalCount"))
	}
	push := func(n int) string { // n aliased createDeploymentObject fields
		var b strings.Builder
		for i := range n {
			b.WriteString(" m" + strconv.Itoa(i) + `: createDeploymentObject(input: {stackId: $s, yamlContent: "n: ` + strconv.Itoa(i) + `"}) { id }`)
		}
		return b.String()
	}
	vars := map[string]any{"s": stack, "yes": true, "no": false}

	// More than the bucket holds: refused, nothing spent, nothing created.
	w.fails(t, w.genA.key, "BAD_USER_INPUT", `mutation($s: ID!) {`+push(11)+` }`, map[string]any{"s": stack})

	// 8 mutations: 5 aliases, 2 through a fragment, 1 @include(if: true);
	// the @skip(if: true) and @include(if: false) ones do not run.
	d := w.ok(t, w.genA.key, `mutation($s: ID!, $yes: Boolean!, $no: Boolean!) {`+push(5)+` ...F
		inc: createDeploymentObject(input: {stackId: $s, yamlContent: "inc"}) @include(if: $yes) { id }
		skip: createDeploymentObject(input: {stackId: $s, yamlContent: "skip"}) @skip(if: $yes) { id }
		exc: createDeploymentObject(input: {stackId: $s, yamlContent: "exc"}) @include(if: $no) { id }
	}
	fragment F on Mutation {
		f1: createDeploymentObject(input: {stackId: $s, yamlContent: "f1"}) { id }
		f2: createDeploymentObject(input: {stackId: $s, yamlContent: "f2"}) { id }
	}`, vars)
	if len(d) != 8 || count() != 8 {
		t.Fatalf("ran %d mutations, stored %d; want 8 and 8", len(d), count())
	}

	// Two tokens are left: three mutations are refused whole, over HTTP 429
	// with Retry-After equal to extensions.retryAfter.
	body, _ := json.Marshal(map[string]any{"query": `mutation($s: ID!) {` + push(3) + ` }`, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+w.genA.key)
	resp, err := w.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var r struct {
		Data   json.RawMessage
		Errors []gqlError
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	retryAfter, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != "RATE_LIMITED" ||
		string(r.Data) != "null" || retryAfter < 1 || retryAfter > 60 || r.Errors[0].Extensions["retryAfter"] != float64(retryAfter) {
		t.Fatalf("want 429 RATE_LIMITED, data null, Retry-After = retryAfter in 1..60: %d Retry-After %q %s",
			resp.StatusCode, resp.Header.Get("Retry-After"), raw)
	}
	if n := count(); n != 8 {
		t.Fatalf("a refused request ran some of its mutations: %d stored, want 8", n)
	}

	// What is left still serves a smaller request, and others are not affected.
	w.ok(t, w.genA.key, `mutation($s: ID!) {`+push(2)+` }`, map[string]any{"s": stack})
	w.fails(t, w.genA.key, "RATE_LIMITED", `{ viewer { role } }`, nil)
	w.ok(t, w.genB.key, `mutation($s: ID!) {`+push(3)+` }`, map[string]any{"s": w.stackB})
	w.ok(t, w.admin, `{ viewer { role } }`, nil)
}
