package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/brokkr/brokkr/models"
)

// internalMessage is all a client learns about a failure that is not its own.
const internalMessage = "internal error"

// ErrorPresenter is the one place where errors become extensions.code
// (DESIGN §5). Domain errors (*models.Error) map their Kind to the code and
// carry their safe message, plus extensions.field and maxBytes (BAD_USER_INPUT),
// extensions.constraint (CONFLICT) and extensions.retryAfter (RATE_LIMITED
// and UNAVAILABLE, whole seconds, at least 1). Errors gqlgen or gqlparser
// built themselves (no cause) keep their message and code, except that
// their refusals of values become BAD_USER_INPUT. Anything else is INTERNAL
// with a generic message; its text goes to the server log only.
func ErrorPresenter(logger *slog.Logger) graphql.ErrorPresenterFunc {
	if logger == nil {
		logger = slog.Default()
	}
	return func(ctx context.Context, err error) *gqlerror.Error {
		return present(ctx, logger, err)
	}
}

func present(ctx context.Context, logger *slog.Logger, err error) *gqlerror.Error {
	out := graphql.DefaultErrorPresenter(ctx, err)
	argument := atField(ctx, out)
	var de *models.Error
	if errors.As(err, &de) {
		return fromDomain(ctx, logger, out, de, argument)
	}
	if out.Err == nil && out.Extensions["code"] != nil {
		// gqlgen's own error (validation, complexity, depth): safe as built.
		// A value of the wrong type or out of range, literal or variable,
		// is bad input rather than a malformed document.
		if badValue(out) {
			out.Extensions["code"] = string(models.KindInvalid)
			if field := lastName(out.Path); field != "" {
				out.Extensions["field"] = field
			}
		}
		return out
	}
	logger.ErrorContext(ctx, "graphql: unclassified error", "err", err, "path", out.Path.String())
	return &gqlerror.Error{
		Message:    internalMessage,
		Path:       out.Path,
		Locations:  out.Locations,
		Extensions: map[string]any{"code": string(models.KindInternal)},
	}
}

func fromDomain(ctx context.Context, logger *slog.Logger, out *gqlerror.Error, de *models.Error, argument string) *gqlerror.Error {
	res := &gqlerror.Error{
		Message:    de.Message,
		Path:       out.Path,
		Locations:  out.Locations,
		Extensions: map[string]any{"code": string(de.Kind)},
	}
	switch de.Kind {
	case models.KindInvalid:
		if de.MaxBytes > 0 {
			res.Extensions["maxBytes"] = de.MaxBytes
		}
		field := de.Field
		if field == "" {
			field = argument // an argument or input field that failed to parse
		}
		if field != "" {
			res.Extensions["field"] = field
		}
		if res.Message == "" {
			res.Message = "invalid input"
		}
	case models.KindConflict:
		if de.Constraint != "" {
			res.Extensions["constraint"] = de.Constraint
		}
	case models.KindRateLimited:
		res.Extensions["retryAfter"] = int(math.Ceil(de.RetryAfter))
	case models.KindUnavailable:
		// A fault of the database, not of the request: worth a warning in
		// the server log, and a retry for the client.
		res.Extensions["retryAfter"] = max(1, int(math.Ceil(de.RetryAfter)))
		logger.WarnContext(ctx, "graphql: database unavailable", "err", de, "path", out.Path.String())
	case models.KindNotFound, models.KindForbidden, models.KindUnauthenticated, models.KindImmutable, models.KindRowBudget:
	default:
		logger.ErrorContext(ctx, "graphql: internal error", "err", de, "path", out.Path.String())
		res.Message = internalMessage
		res.Extensions["code"] = string(models.KindInternal)
	}
	if de.Kind != models.KindInternal && de.Kind != models.KindUnavailable && de.Err != nil {
		logger.DebugContext(ctx, "graphql: client error", "err", de)
	}
	return res
}

// badValue reports gqlparser's refusals of values: a literal of the wrong
// type or out of range (ValuesOfCorrectType), or a variable that does not
// coerce to its type (path "variable", name).
func badValue(e *gqlerror.Error) bool {
	if e.Rule == "ValuesOfCorrectType" {
		return true
	}
	return len(e.Path) == 2 && e.Path[0] == ast.PathName("variable")
}

// lastName is the last name in a path ("" when there is none): the
// argument, input field or variable an error is about.
func lastName(p ast.Path) string {
	for i := len(p) - 1; i >= 0; i-- {
		if name, ok := p[i].(ast.PathName); ok {
			return string(name)
		}
	}
	return ""
}

// atField reports an argument's error at the field the argument belongs to,
// and returns the argument's (or input field's) name. gqlgen appends the
// argument and input field names to the path of such an error, but a path
// names response fields only (GraphQL spec, "Errors"), and the commit rule
// of mutations (schema.graphqls) depends on it: an error at exactly a
// mutation's path means that mutation did not run, one deeper is about
// reading its committed result.
func atField(ctx context.Context, out *gqlerror.Error) string {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil {
		return ""
	}
	fp := fc.Path()
	if len(out.Path) <= len(fp) || out.Path[:len(fp)].String() != fp.String() {
		return ""
	}
	name := lastName(out.Path[len(fp):])
	out.Path = fp
	return name
}

// Recover turns a resolver panic into INTERNAL, logging the value and stack.
func Recover(logger *slog.Logger) graphql.RecoverFunc {
	if logger == nil {
		logger = slog.Default()
	}
	return func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "graphql: panic in resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return &models.Error{Kind: models.KindInternal, Message: internalMessage, Err: fmt.Errorf("panic: %v", p)}
	}
}
