package graph

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

func fanOut(levels int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{viewer{...F%d}}\nfragment F0 on Viewer{role}\n", levels)
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "fragment F%d on Viewer{...F%d ...F%d}\n", i, i-1, i-1)
	}
	return b.String()
}

func mustParse(t *testing.T, q string) *ast.QueryDocument {
	t.Helper()
	doc, err := parser.ParseQuery(&ast.Source{Input: q})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// The cost walk weighs each fragment once: fan-outs whose expansion is
// exponential are weighed exactly (or saturated) in linear time, deep
// fragments count for depth, and what validation would refuse (cycles,
// unknown fragments) does not trap it.
func TestCostWalk(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name          string
		doc           string
		depth, fields int
	}{
		{"plain", `{ viewer { role generator { id name } } }`, 3, 5},
		{"fan-out 10", fanOut(10), 2, 1 + 1<<10},
		{"fan-out 24", fanOut(24), 2, 1 + 1<<24},
		{"fan-out 40", fanOut(40), 2, maxCount},
		{"depth through fragments", `{ generators { ...G } } fragment G on GeneratorConnection { nodes { stacks { ...S } } }
			fragment S on StackConnection { nodes { deploymentObjects { nodes { id } } } }`, 7, 7},
		{"introspection adds no depth", `{ __schema { types { name fields { type { ofType { ofType { name } } } } } } }`, 0, 8},
		{"a cycle", `{ viewer { ...A } } fragment A on Viewer { role ...B } fragment B on Viewer { ...A }`, 2, 2},
		{"an unknown fragment", `{ viewer { ...Nope role } }`, 2, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := mustParse(t, c.doc)
			got := newCostWalk(doc).set(doc.Operations[0].SelectionSet)
			if got.depth != c.depth || got.fields != c.fields {
				t.Fatalf("cost = %+v, want depth %d, fields %d", got, c.depth, c.fields)
			}
		})
	}
}

// Each cap refuses with its code and names itself; a document at the caps
// passes.
func TestLimitsCheck(t *testing.T) {
	t.Parallel()
	l := Limits{MaxTokens: 50, MaxFields: 30, MaxAliases: 2, MaxDepth: 3, MaxComplexity: 100}
	for _, c := range []struct {
		name, doc string
		code, cap string // cap: extensions.limit
	}{
		{"at the caps", `{ a: viewer { role } b: viewer { role } viewer { generator { id } } }`, "", ""},
		{"fields", `{ viewer { ` + strings.Repeat("a: role b: role c: role d: role e: role f: role ", 5) + `} }`, CodeQueryTooLarge, "fields"},
		{"aliases", `{ a: viewer { role } b: viewer { role } c: viewer { role } }`, CodeQueryTooLarge, "aliases"},
		{"depth", `{ viewer { generator { stacks { nodes { id } } } } }`, "GRAPHQL_VALIDATION_FAILED", ""},
		{"complexity", fanOut(7), CodeComplexity, ""},
		{"repeats", `{ viewer { ` + strings.Repeat("...A ", MaxRepeats+1) + `} } fragment A on Viewer { role }`, CodeQueryTooLarge, "repeats"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := l.check(mustParse(t, c.doc))
			if c.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || err.Extensions["code"] != c.code || (c.cap != "" && err.Extensions["limit"] != c.cap) {
				t.Fatalf("got %v (%v), want %s %s", err, err.Extensions, c.code, c.cap)
			}
		})
	}
	many := "{ viewer { role } }\n" + strings.Repeat("fragment A on Viewer { role }\n", MaxFragments+1)
	if err := (Limits{}).check(mustParse(t, many)); err == nil || err.Extensions["limit"] != "fragments" {
		t.Fatalf("%d fragments: %v", MaxFragments+1, err)
	}
}

// The token count agrees with gqlgen's parser limit (the backstop set to
// the same value), comments included: a document of exactly max tokens
// passes both, one more token fails both.
func TestTokensAgreeWithParser(t *testing.T) {
	t.Parallel()
	const max = 30
	for _, comment := range []string{"", "# one\n# two\n"} {
		// The comments, "{", "viewer", "{", n × "role", "}", "}".
		doc := func(tokens int) string {
			n := tokens - 5 - strings.Count(comment, "#")
			return comment + "{ viewer { " + strings.Repeat("role ", n) + "} }"
		}
		if tokensOver(doc(max), max) {
			t.Fatalf("a document of max tokens is over: %q", doc(max))
		}
		if _, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: doc(max)}, max); err != nil {
			t.Fatalf("the parser refuses a document of max tokens: %v", err)
		}
		if !tokensOver(doc(max+1), max) {
			t.Fatalf("a document of max+1 tokens is not over: %q", doc(max+1))
		}
		if _, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: doc(max + 1)}, max); err == nil {
			t.Fatal("the parser takes a document of max+1 tokens")
		}
	}
}
