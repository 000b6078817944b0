package querygen_test

import (
	"os"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/brokkr/brokkr/graph/querygen"
)

func loadSchema(t *testing.T) *ast.Schema {
	t.Helper()
	src, err := os.ReadFile("../../schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	s, gerr := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(src)})
	if gerr != nil {
		t.Fatal(gerr)
	}
	return s
}

// Every document is valid, variables included, and a seed always gives the
// same document.
func TestGenerateValid(t *testing.T) {
	t.Parallel()
	schema := loadSchema(t)
	cfg := querygen.Config{Schema: schema}
	features := map[string]int{}
	for seed := range uint64(3000) {
		q := querygen.Generate(cfg, seed)
		if again := querygen.Generate(cfg, seed); again.Text != q.Text {
			t.Fatalf("seed %d is not deterministic:\n%s\n%s", seed, q.Text, again.Text)
		}
		doc, errs := gqlparser.LoadQueryWithRules(schema, q.Text, rules.NewDefaultRules())
		if errs != nil {
			t.Fatalf("seed %d: invalid document: %v\n%s", seed, errs, q.Text)
		}
		if _, err := validator.VariableValues(schema, doc.Operations[0], q.Variables); err != nil {
			t.Fatalf("seed %d: invalid variables %v: %v\n%s", seed, q.Variables, err, q.Text)
		}
		for _, f := range []string{"fragment ", "... on ", "...F", "@skip", "@include", "__typename", ": ", "$"} {
			if strings.Contains(q.Text, f) {
				features[f]++
			}
		}
	}
	// The documents use every device the generator has.
	for _, f := range []string{"fragment ", "... on ", "...F", "@skip", "@include", "__typename", ": ", "$"} {
		if features[f] < 30 {
			t.Errorf("only %d of 3000 documents use %q", features[f], f)
		}
	}
	t.Logf("features in 3000 documents: %v", features)
}

// Seeds differ.
func TestGenerateVaries(t *testing.T) {
	t.Parallel()
	cfg := querygen.Config{Schema: loadSchema(t)}
	seen := map[string]bool{}
	for seed := range uint64(200) {
		seen[querygen.Generate(cfg, seed).Text] = true
	}
	if len(seen) < 195 {
		t.Fatalf("200 seeds gave %d distinct documents", len(seen))
	}
}
