// Package scalar holds Brokkr's GraphQL scalar marshallers. They wrap gqlgen's
// own (graphql.String, graphql.Int, graphql.UUID, graphql.Int64,
// graphql.Time) so that a value the client got wrong is reported in Brokkr's
// error vocabulary (BAD_USER_INPUT) with a message of ours rather than a
// parser's, or than INTERNAL (gqlgen's overflow errors carry no code).
package scalar

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/core"

	"github.com/brokkr/brokkr/models"
)

func invalid(msg string, cause error) error {
	e := models.Invalid("", "%s", msg)
	e.Err = cause
	return e
}

// MarshalUUID writes an ID as its canonical string.
func MarshalUUID(id uuid.UUID) graphql.Marshaler { return graphql.MarshalUUID(id) }

// UnmarshalUUID reads an ID; anything that is not a UUID is invalid input.
func UnmarshalUUID(v any) (uuid.UUID, error) {
	id, err := graphql.UnmarshalUUID(v)
	if err != nil {
		return uuid.Nil, invalid("malformed id: expected a UUID", err)
	}
	return id, nil
}

// MarshalInt64 writes an Int64 as a JSON number.
func MarshalInt64(v int64) graphql.Marshaler { return graphql.MarshalInt64(v) }

// UnmarshalInt64 reads an Int64 (a JSON number or a decimal string).
func UnmarshalInt64(v any) (int64, error) {
	n, err := graphql.UnmarshalInt64(v)
	if err != nil {
		return 0, invalid("malformed Int64", err)
	}
	return n, nil
}

// MarshalTime writes a Time as RFC 3339 with nanoseconds.
func MarshalTime(t time.Time) graphql.Marshaler { return graphql.MarshalTime(t) }

// UnmarshalTime reads an RFC 3339 time.
func UnmarshalTime(v any) (time.Time, error) {
	t, err := graphql.UnmarshalTime(v)
	if err != nil {
		return time.Time{}, invalid("malformed Time: expected RFC 3339", err)
	}
	return t, nil
}

// MarshalString writes a String.
func MarshalString(s string) graphql.Marshaler { return graphql.MarshalString(s) }

// UnmarshalString reads a String (gqlgen also takes a number or boolean as
// its text). A string with a NUL byte, which PostgreSQL text cannot hold, or
// that is not valid UTF-8 is invalid input: refused, never stored cut short
// or rewritten. (Invalid UTF-8 in a request body is refused before decoding
// by the api package, since encoding/json would rewrite it to U+FFFD; this
// check covers values that reach the executor another way.)
func UnmarshalString(v any) (string, error) {
	s, err := graphql.UnmarshalString(v)
	if err != nil {
		return "", invalid("malformed String", err)
	}
	if !utf8.ValidString(s) {
		return "", invalid("a string is not valid UTF-8", nil)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", invalid("a string contains a NUL character (U+0000)", nil)
	}
	return s, nil
}

// MarshalInt writes an Int.
func MarshalInt(n int) graphql.Marshaler { return graphql.MarshalInt(n) }

// UnmarshalInt reads an Int: a 32-bit signed integer (GraphQL's Int), also
// where the Go field is an int.
func UnmarshalInt(v any) (int, error) {
	n, err := UnmarshalInt32(v)
	return int(n), err
}

// MarshalInt32 writes an Int held in an int32.
func MarshalInt32(n int32) graphql.Marshaler { return graphql.MarshalInt32(n) }

// UnmarshalInt32 reads an Int; one that does not fit 32 bits is invalid.
func UnmarshalInt32(v any) (int32, error) {
	n, err := graphql.UnmarshalInt32(v)
	if err != nil {
		return 0, invalid("malformed Int: expected a 32-bit integer", err)
	}
	return n, nil
}

// NumberLiterals is a validation rule: an integer literal in a document
// that does not fit 64 bits, or a float literal that does not fit a
// float64, is invalid input wherever it stands (an argument, an input
// field, a list, a directive, a variable's default). Literals of the
// built-in scalars are checked by gqlparser's ValuesOfCorrectType; those of
// custom scalars (Int64) are not, and gqlparser's ArgumentMap panics on them
// (strconv.ParseInt's range error) when gqlgen's complexity walk or the
// executor reads the arguments: an HTTP 500 and a logged panic, without a
// key. Refused in validation, such a document never gets that far.
var NumberLiterals = core.Rule{
	Name: "BrokkrNumberLiterals",
	RuleFunc: func(observers *core.Events, addError core.AddErrFunc) {
		observers.OnField(func(_ *core.Walker, f *ast.Field) { checkArguments(f.Arguments, addError) })
		observers.OnDirective(func(_ *core.Walker, d *ast.Directive) { checkArguments(d.Arguments, addError) })
		observers.OnVariable(func(_ *core.Walker, v *ast.VariableDefinition) {
			checkNumbers(v.Variable, v.DefaultValue, addError)
		})
	},
}

func checkArguments(args ast.ArgumentList, addError core.AddErrFunc) {
	for _, a := range args {
		checkNumbers(a.Name, a.Value, addError)
	}
}

// checkNumbers checks the literals of v, the value of the argument or
// input field name, and of the values nested in it.
func checkNumbers(name string, v *ast.Value, addError core.AddErrFunc) {
	if v == nil {
		return
	}
	switch v.Kind {
	case ast.IntValue, ast.FloatValue:
		if v.Definition != nil && v.Definition.BuiltIn {
			return // Int, Float, ID: ValuesOfCorrectType checks them
		}
		var err error
		if v.Kind == ast.IntValue {
			_, err = strconv.ParseInt(v.Raw, 10, 64)
		} else {
			_, err = strconv.ParseFloat(v.Raw, 64)
		}
		if err != nil {
			msg := fmt.Sprintf("%s: the number %s is out of range", name, v.Raw)
			addError(core.Message("%s", msg), core.At(v.Position), func(e *gqlerror.Error) {
				e.Err = models.Invalid(name, "%s", msg)
			})
		}
	case ast.ListValue:
		for _, c := range v.Children {
			checkNumbers(name, c.Value, addError)
		}
	case ast.ObjectValue:
		for _, c := range v.Children {
			checkNumbers(c.Name, c.Value, addError)
		}
	}
}
