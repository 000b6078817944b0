// Package querygen writes random valid GraphQL query documents over a
// schema, for differential tests (api/differential_test.go compares the
// read planner's answers with gqlgen's executor's on them).
//
// A document is one query operation: a few root fields, each with a random
// subset of its object type's fields, down to a bounded depth; random
// arguments (as literals or as variables of the argument's type, with the
// variables' values in Query.Variables); aliases; inline and named
// fragments; @skip/@include with literals and variables; __typename. Values
// come from the caller's Values hook where it knows better (ids of real
// rows, cursors, names) and are made up from the type otherwise. The same
// seed and configuration give the same document.
//
// The documents are valid by construction: every response name is unique
// within its selection set (fragments included), so no two fields need
// merging; fragments are on the object type they are spread in, each named
// one used once. The schema's object types are expected to be objects (no
// interfaces or unions: this schema has none; a field of such a type is
// left out).
package querygen

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// Config says what to generate.
type Config struct {
	Schema *ast.Schema
	// MaxDepth bounds the nesting of fields (a root field is depth 1);
	// default 6.
	MaxDepth int
	// MaxRootFields bounds the operation's root fields; default 3.
	MaxRootFields int
	// MaxFields bounds the fields picked in one selection set; default 5.
	MaxFields int
	// Skip leaves fields out: those for which it returns true (for
	// example introspection, or subscriptions' payloads).
	Skip func(parent, field string) bool
	// Values supplies the value of an argument or input field the caller
	// knows about; ok false leaves it to the generator.
	Values func(v Want) (value any, ok bool)
}

// Want describes a value to make: an argument of Parent.Field (Parent an
// object type), or an input field (Parent an input type, Field empty).
type Want struct {
	Rand   *rand.Rand
	Parent string // the object type of the field, or the input object type
	Field  string // the field whose argument this is ("" for input fields)
	Name   string // the argument's or the input field's name
	Type   *ast.Type
	Depth  int // the depth of the field whose argument this is
}

// Query is one generated document.
type Query struct {
	Text      string
	Variables map[string]any
}

// Generate writes the document of seed.
func Generate(cfg Config, seed uint64) Query {
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = 6
	}
	if cfg.MaxRootFields <= 0 {
		cfg.MaxRootFields = 3
	}
	if cfg.MaxFields <= 0 {
		cfg.MaxFields = 5
	}
	g := &gen{cfg: cfg, r: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)), vars: map[string]any{}}
	body := g.selection(cfg.Schema.Query, 0, newScope(), cfg.MaxRootFields)
	var b strings.Builder
	fmt.Fprintf(&b, "query Q%d", seed)
	if len(g.varDefs) > 0 {
		b.WriteString("(" + strings.Join(g.varDefs, ", ") + ")")
	}
	b.WriteString(" " + body)
	for _, f := range g.fragments {
		b.WriteString("\n" + f)
	}
	q := Query{Text: b.String()}
	if len(g.vars) > 0 {
		q.Variables = g.vars
	}
	return q
}

type gen struct {
	cfg       Config
	r         *rand.Rand
	varDefs   []string
	vars      map[string]any
	fragments []string
	names     int // counter for aliases, variables and fragments
}

func (g *gen) next(prefix string) string {
	g.names++
	return prefix + strconv.Itoa(g.names)
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

// scope is the response names taken in one selection set, its fragments
// included.
type scope map[string]bool

func newScope() scope { return scope{} }

// selection writes a selection set on def at depth (the depth of the field
// that owns it, 0 for the operation) with at most max fields.
func (g *gen) selection(def *ast.Definition, depth int, sc scope, max int) string {
	var parts []string
	fields := g.candidates(def, depth)
	g.r.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	n := 1 + g.r.IntN(max)
	for _, f := range fields[:min(n, len(fields))] {
		parts = append(parts, g.field(def, f, depth+1, sc))
	}
	if len(parts) == 0 || g.chance(0.15) {
		name := "__typename"
		if sc[name] {
			name = g.next("t") + ": __typename"
		}
		sc[strings.SplitN(name, ":", 2)[0]] = true
		parts = append(parts, name)
	}
	g.r.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
	parts = g.group(def, parts, depth, sc)
	return "{ " + strings.Join(parts, " ") + " }"
}

// candidates are def's fields that may be selected at depth: leaves
// always, object-typed fields while the depth allows.
func (g *gen) candidates(def *ast.Definition, depth int) []*ast.FieldDefinition {
	var out []*ast.FieldDefinition
	for _, f := range def.Fields {
		if strings.HasPrefix(f.Name, "__") || g.cfg.Skip != nil && g.cfg.Skip(def.Name, f.Name) {
			continue
		}
		t := g.cfg.Schema.Types[f.Type.Name()]
		if t == nil || t.Kind == ast.Interface || t.Kind == ast.Union {
			continue
		}
		if t.Kind == ast.Object && depth+1 >= g.cfg.MaxDepth {
			continue
		}
		out = append(out, f)
	}
	return out
}

// group wraps some of a selection's parts in inline or named fragments, or
// puts a directive on one.
func (g *gen) group(def *ast.Definition, parts []string, depth int, sc scope) []string {
	if len(parts) >= 2 && g.chance(0.2) {
		k := 1 + g.r.IntN(len(parts)-1)
		inner := strings.Join(parts[:k], " ")
		switch {
		case g.chance(0.5):
			name := g.next("F")
			g.fragments = append(g.fragments, fmt.Sprintf("fragment %s on %s { %s }", name, def.Name, inner))
			parts = append([]string{"..." + name + g.directive(0.2)}, parts[k:]...)
		case g.chance(0.5):
			parts = append([]string{"... on " + def.Name + g.directive(0.2) + " { " + inner + " }"}, parts[k:]...)
		default:
			parts = append([]string{"..." + g.directive(0.3) + " { " + inner + " }"}, parts[k:]...)
		}
	}
	return parts
}

// directive is " @skip(...)" or " @include(...)" with probability p.
func (g *gen) directive(p float64) string {
	if !g.chance(p) {
		return ""
	}
	name := "include"
	if g.chance(0.5) {
		name = "skip"
	}
	var cond string
	if g.chance(0.5) {
		v := g.next("b")
		g.varDefs = append(g.varDefs, "$"+v+": Boolean!")
		g.vars[v] = g.chance(0.5)
		cond = "$" + v
	} else {
		cond = strconv.FormatBool(g.chance(0.5))
	}
	return fmt.Sprintf(" @%s(if: %s)", name, cond)
}

// field writes one field of parent: its response name, arguments,
// directive and selection set.
func (g *gen) field(parent *ast.Definition, f *ast.FieldDefinition, depth int, sc scope) string {
	resp := f.Name
	var b strings.Builder
	if sc[resp] || g.chance(0.15) {
		resp = g.next("a")
		b.WriteString(resp + ": ")
	}
	sc[resp] = true
	b.WriteString(f.Name)
	if args := g.arguments(parent, f, depth); args != "" {
		b.WriteString("(" + args + ")")
	}
	b.WriteString(g.directive(0.08))
	t := g.cfg.Schema.Types[f.Type.Name()]
	if t.Kind == ast.Object {
		b.WriteString(" " + g.selection(t, depth, newScope(), g.cfg.MaxFields))
	}
	return b.String()
}

// arguments writes some of f's arguments: every required one, each other
// one with even odds.
func (g *gen) arguments(parent *ast.Definition, f *ast.FieldDefinition, depth int) string {
	var out []string
	for _, a := range f.Arguments {
		required := a.Type.NonNull && a.DefaultValue == nil
		if !required && !g.chance(0.5) {
			continue
		}
		w := Want{Rand: g.r, Parent: parent.Name, Field: f.Name, Name: a.Name, Type: a.Type, Depth: depth}
		v := g.value(w)
		if g.chance(0.35) {
			out = append(out, a.Name+": "+g.variable(a.Type, v))
		} else {
			out = append(out, a.Name+": "+literal(g.cfg.Schema, a.Type, v))
		}
	}
	return strings.Join(out, ", ")
}

// variable declares a variable of type t holding v and returns its use. A
// nullable variable whose value is null is sometimes left out of the
// variables, or given as a default.
func (g *gen) variable(t *ast.Type, v any) string {
	name := g.next("v")
	def := "$" + name + ": " + t.String()
	switch {
	case v == nil && !t.NonNull && g.chance(0.5):
		// absent: the argument takes its default
	case !t.NonNull && g.chance(0.15):
		def += " = " + literal(g.cfg.Schema, t, v)
	default:
		g.vars[name] = v
	}
	g.varDefs = append(g.varDefs, def)
	return "$" + name
}

// value makes a value for w: the caller's, or one made up from the type.
func (g *gen) value(w Want) any {
	if g.cfg.Values != nil {
		if v, ok := g.cfg.Values(w); ok {
			return v
		}
	}
	t := w.Type
	if !t.NonNull && g.chance(0.1) {
		return nil
	}
	if t.Elem != nil {
		n := g.r.IntN(3)
		out := make([]any, n)
		for i := range out {
			e := w
			e.Type = t.Elem
			out[i] = g.value(e)
		}
		return out
	}
	def := g.cfg.Schema.Types[t.NamedType]
	switch def.Kind {
	case ast.Enum:
		return def.EnumValues[g.r.IntN(len(def.EnumValues))].Name
	case ast.InputObject:
		return g.inputObject(def, w.Depth)
	}
	return g.scalar(t.NamedType)
}

// inputObject makes an input object: its required fields, and each other
// field with even odds.
func (g *gen) inputObject(def *ast.Definition, depth int) map[string]any {
	out := map[string]any{}
	for _, f := range def.Fields {
		if !(f.Type.NonNull && f.DefaultValue == nil) && !g.chance(0.5) {
			continue
		}
		out[f.Name] = g.value(Want{Rand: g.r, Parent: def.Name, Name: f.Name, Type: f.Type, Depth: depth})
	}
	return out
}

func (g *gen) scalar(name string) any {
	switch name {
	case "Int", "Int64":
		return []int{0, 1, 2, 3, 10, -1}[g.r.IntN(6)]
	case "Float":
		return g.r.Float64() * 10
	case "Boolean":
		return g.chance(0.5)
	case "ID":
		return fmt.Sprintf("%08x-0000-4000-8000-%012x", g.r.Uint32(), g.r.Uint64()&0xffffffffffff)
	case "Time":
		return "2024-01-02T03:04:05Z"
	}
	return []string{"a", "web", "", "ünï \"q\"", "x y"}[g.r.IntN(5)]
}

// literal writes v, a value of type t, as GraphQL.
func literal(s *ast.Schema, t *ast.Type, v any) string {
	if v == nil {
		return "null"
	}
	if t.Elem != nil {
		var l []any
		switch vs := v.(type) {
		case []any:
			l = vs
		case []string:
			for _, e := range vs {
				l = append(l, e)
			}
		default: // a single value where a list is expected (input coercion)
			return literal(s, t.Elem, v)
		}
		parts := make([]string, len(l))
		for i, e := range l {
			parts[i] = literal(s, t.Elem, e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	def := s.Types[t.NamedType]
	switch def.Kind {
	case ast.Enum:
		return fmt.Sprint(v)
	case ast.InputObject:
		m := v.(map[string]any)
		keys := slices.Sorted(maps.Keys(m))
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+": "+literal(s, def.Fields.ForName(k).Type, m[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	// Scalars: JSON's strings and numbers are GraphQL's (JSON escapes are
	// a subset of GraphQL's).
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("querygen: %v", err))
	}
	return string(b)
}
