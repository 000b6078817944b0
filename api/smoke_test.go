package api_test

import (
	"testing"

	"github.com/brokkr/brokkr/api"
)

func TestSmoke(t *testing.T) {
	e := setup(t, api.Config{})
	d := e.ok(t, e.admin, `{ viewer { role } }`, nil)
	if str(d, "viewer", "role") != "ADMIN" {
		t.Fatalf("viewer: %v", d)
	}
	d = e.ok(t, e.admin, `mutation { createGenerator(input: {name: "ci"}) { apiKey generator { id name } } }`, nil)
	gk := str(d, "createGenerator", "apiKey")
	d = e.ok(t, gk, `mutation { createStack(input: {name: "web", labels: ["a"]}) { id name labels generator { name } } }`, nil)
	t.Logf("%v", d)
	d = e.ok(t, gk, `{ viewer { role generator { name stacks { totalCount nodes { name labels deploymentObjects { totalCount } } } } } }`, nil)
	t.Logf("%v", d)
}
