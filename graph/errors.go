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
// carry their safe message, plus extensions.field (BAD_USER_INPUT),
// extensions.constraint (CONFLICT) and extensions.retryAfter (RATE_LIMITED,
// seconds). Errors gqlgen or gqlparser built themselves (no cause) keep their
// message and code. Anything else is INTERNAL with a generic message; its
// text goes to the server log only.
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
	var de *models.Error
	if errors.As(err, &de) {
		return fromDomain(ctx, logger, out, de)
	}
	if out.Err == nil && out.Extensions["code"] != nil {
		// gqlgen's own error (validation, complexity, depth): safe as built.
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

func fromDomain(ctx context.Context, logger *slog.Logger, out *gqlerror.Error, de *models.Error) *gqlerror.Error {
	res := &gqlerror.Error{
		Message:    de.Message,
		Path:       out.Path,
		Locations:  out.Locations,
		Extensions: map[string]any{"code": string(de.Kind)},
	}
	switch de.Kind {
	case models.KindInvalid:
		field := de.Field
		if field == "" && len(out.Path) > 0 {
			// An argument or input field that failed to parse: the path ends
			// at its name.
			if name, ok := out.Path[len(out.Path)-1].(ast.PathName); ok {
				field = string(name)
			}
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
	case models.KindNotFound, models.KindForbidden, models.KindUnauthenticated, models.KindImmutable, models.KindRowBudget:
	default:
		logger.ErrorContext(ctx, "graphql: internal error", "err", de, "path", out.Path.String())
		res.Message = internalMessage
		res.Extensions["code"] = string(models.KindInternal)
	}
	if de.Kind != models.KindInternal && de.Err != nil {
		logger.DebugContext(ctx, "graphql: client error", "err", de)
	}
	return res
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
