package graph_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql/errcode"

	"github.com/brokkr/brokkr/graph"
)

// docs/errors.md has a section for every extensions.code the broker sends:
// each models.Kind (read from models/errors.go, so a new kind needs its
// documentation), the document limits' codes, and gqlgen's own.
func TestEveryErrorCodeIsDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	codes := append(kindCodes(t), graph.CodeQueryTooLarge, graph.CodeComplexity, errcode.ParseFailed, errcode.ValidationFailed)
	if len(codes) < 14 {
		t.Fatalf("found only %d codes: %v", len(codes), codes)
	}
	for _, c := range codes {
		if !strings.Contains(string(doc), "\n### "+c+"\n") {
			t.Errorf("docs/errors.md has no section ### %s", c)
		}
	}
}

// kindCodes are the values of the Kind constants of models/errors.go.
func kindCodes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../models/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); !ok || id.Name != "Kind" || len(v.Values) != 1 {
				continue
			}
			if lit, ok := v.Values[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				c, _ := strconv.Unquote(lit.Value)
				codes = append(codes, c)
			}
		}
	}
	return codes
}
