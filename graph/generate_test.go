package graph

import (
	"os"
	"strings"
	"testing"
)

// gqlgen turns a schema field it cannot bind into a resolver stub that
// panics "not implemented" and only logs a line about it (STYLE.md traps):
// this test makes that a failed build.
func TestNoStubbedResolvers(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		b, err := os.ReadFile(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		checked++
		if strings.Contains(string(b), `panic(fmt.Errorf("not implemented`) {
			t.Errorf("%s: gqlgen stubbed a resolver it could not bind (\"not implemented\"); bind the field or write its resolver", e.Name())
		}
	}
	if checked == 0 {
		t.Fatal("no Go files checked")
	}
}

// The committed generated code must come from the committed schema:
// `go generate ./...` after editing schema.graphqls.
func TestGeneratedFromCurrentSchema(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile("../schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	if len(sources) != 1 || !strings.HasSuffix(sources[0].Name, "schema.graphqls") {
		t.Fatalf("generated.go has %d sources; want schema.graphqls only", len(sources))
	}
	if sources[0].Input != string(want) {
		t.Fatal("graph/generated.go is stale: run `go generate ./...` after changing schema.graphqls")
	}
}
