package api_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/brokkr/brokkr/graph/scalar"
)

// diffSchema is schema.graphqls, parsed by gqlparser as gqlgen does.
var diffSchema = sync.OnceValues(func() (*ast.Schema, error) {
	src, err := os.ReadFile("../schema.graphqls")
	if err != nil {
		return nil, err
	}
	s, gerr := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(src)})
	if gerr != nil {
		return nil, gerr
	}
	return s, nil
})

// diffRules are the validation rules the server runs (api.New).
func diffRules() *rules.Rules {
	r := rules.NewDefaultRules()
	r.AddRule(scalar.NumberLiterals.Name, scalar.NumberLiterals.RuleFunc)
	return r
}

// readSurface is what a query can read, found by walking the schema from
// Query: "Type.field" for every field of every object type reachable from
// it, "Type.field(arg)" for their arguments, "Input.field" for the fields
// of the input objects those take (and the inputs inside them), and
// "Enum.VALUE" for the values of input enums. Types reachable only from
// Mutation or Subscription are listed apart: queries cannot read them.
func readSurface(s *ast.Schema) (items []string, unreachable []string) {
	seen := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		def := s.Types[name]
		if def == nil || seen[name] || strings.HasPrefix(name, "__") {
			return
		}
		seen[name] = true
		switch def.Kind {
		case ast.Object:
			for _, f := range def.Fields {
				if strings.HasPrefix(f.Name, "__") {
					continue
				}
				items = append(items, name+"."+f.Name)
				for _, a := range f.Arguments {
					items = append(items, fmt.Sprintf("%s.%s(%s)", name, f.Name, a.Name))
					visit(a.Type.Name())
				}
				visit(f.Type.Name())
			}
		case ast.InputObject:
			for _, f := range def.Fields {
				items = append(items, name+"."+f.Name)
				visit(f.Type.Name())
			}
		}
	}
	visit(s.Query.Name)
	// Input enums: the values a query can send.
	for _, it := range slices.Clone(items) {
		if strings.Contains(it, "(") {
			continue
		}
		typ, field, _ := strings.Cut(it, ".")
		if d := s.Types[typ]; d.Kind == ast.InputObject {
			if e := s.Types[d.Fields.ForName(field).Type.Name()]; e.Kind == ast.Enum {
				for _, v := range e.EnumValues {
					items = append(items, e.Name+"."+v.Name)
				}
			}
		}
	}
	for name, def := range s.Types {
		if !seen[name] && !def.BuiltIn && (def.Kind == ast.Object || def.Kind == ast.InputObject) {
			unreachable = append(unreachable, name)
		}
	}
	slices.Sort(items)
	items = slices.Compact(items)
	slices.Sort(unreachable)
	return items, unreachable
}

// covered records what a document reads: fields, arguments given, input
// fields given (as literals or in variables) and input enum values.
func covered(s *ast.Schema, doc *ast.QueryDocument, vars map[string]any, op string, into map[string]bool) {
	for _, o := range doc.Operations {
		if op != "" && o.Name != op {
			continue
		}
		walkSelections(s, o.SelectionSet, vars, into, map[string]bool{})
	}
}

func walkSelections(s *ast.Schema, set ast.SelectionSet, vars map[string]any, into, fragments map[string]bool) {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.ObjectDefinition == nil || strings.HasPrefix(sel.Name, "__") {
				continue
			}
			name := sel.ObjectDefinition.Name + "." + sel.Name
			into[name] = true
			for _, a := range sel.Arguments {
				into[fmt.Sprintf("%s(%s)", name, a.Name)] = true
				if d := sel.Definition.Arguments.ForName(a.Name); d != nil {
					walkValue(s, d.Type, a.Value, vars, into)
				}
			}
			walkSelections(s, sel.SelectionSet, vars, into, fragments)
		case *ast.InlineFragment:
			walkSelections(s, sel.SelectionSet, vars, into, fragments)
		case *ast.FragmentSpread:
			if sel.Definition != nil && !fragments[sel.Name] {
				fragments[sel.Name] = true
				walkSelections(s, sel.Definition.SelectionSet, vars, into, fragments)
			}
		}
	}
}

// walkValue records the input fields and enum values of v, of type t.
func walkValue(s *ast.Schema, t *ast.Type, v *ast.Value, vars map[string]any, into map[string]bool) {
	if v == nil {
		return
	}
	switch v.Kind {
	case ast.Variable:
		if val, ok := vars[v.Raw]; ok {
			walkJSON(s, t, val, into)
		} else if v.VariableDefinition != nil {
			walkValue(s, t, v.VariableDefinition.DefaultValue, vars, into)
		}
	case ast.ListValue:
		for _, c := range v.Children {
			walkValue(s, t.Elem, c.Value, vars, into)
		}
	case ast.ObjectValue:
		def := s.Types[t.Name()]
		for _, c := range v.Children {
			into[def.Name+"."+c.Name] = true
			if f := def.Fields.ForName(c.Name); f != nil {
				walkValue(s, f.Type, c.Value, vars, into)
			}
		}
	case ast.EnumValue:
		into[t.Name()+"."+v.Raw] = true
	default:
		if t.Elem != nil { // a single value coerced to a list
			walkValue(s, t.Elem, v, vars, into)
		}
	}
}

// walkJSON is walkValue for a variable's JSON value.
func walkJSON(s *ast.Schema, t *ast.Type, v any, into map[string]bool) {
	def := s.Types[t.Name()]
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			walkJSON(s, t.Elem, e, into)
		}
	case []string:
		for _, e := range v {
			walkJSON(s, t.Elem, e, into)
		}
	case []map[string]any:
		for _, e := range v {
			walkJSON(s, t.Elem, e, into)
		}
	case map[string]any:
		for k, e := range v {
			into[def.Name+"."+k] = true
			if f := def.Fields.ForName(k); f != nil {
				walkJSON(s, f.Type, e, into)
			}
		}
	case string:
		if def != nil && def.Kind == ast.Enum {
			into[def.Name+"."+v] = true
		}
	}
}

// The corpus reads every field of the schema a query can read, passes
// every argument and every input field, and every value of the input
// enums: checked by walking the schema, so a field added to the schema
// fails here until the corpus reads it.
func TestDifferentialCorpusCoverage(t *testing.T) {
	t.Parallel()
	s, err := diffSchema()
	if err != nil {
		t.Fatal(err)
	}
	surface, unreachable := readSurface(s)
	got := map[string]bool{}
	cases := diffCorpus(fakeDiffFixture(), fakeDiffCursors())
	for _, c := range cases {
		doc, errs := gqlparser.LoadQueryWithRules(s, c.query, diffRules())
		if errs != nil {
			continue // the corpus's invalid documents read nothing
		}
		covered(s, doc, c.vars, c.op, got)
	}
	var missing []string
	for _, it := range surface {
		if !got[it] {
			missing = append(missing, it)
		}
	}
	if len(missing) > 0 {
		t.Errorf("the differential corpus does not cover %d of %d items of the read surface: %s", len(missing), len(surface), strings.Join(missing, ", "))
	}
	t.Logf("corpus coverage: %d cases cover %d/%d fields, arguments, input fields and input enum values reachable from Query; "+
		"not reachable from Query (mutation and subscription types, not read by queries): %s",
		len(cases), len(surface)-len(missing), len(surface), strings.Join(unreachable, ", "))
}
