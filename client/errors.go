package client

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/Khan/genqlient/graphql"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// The broker's error codes (extensions.code; docs/errors.md has them all).
const (
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeForbidden       = "FORBIDDEN"
	CodeNotFound        = "NOT_FOUND"
	CodeBadUserInput    = "BAD_USER_INPUT"
	CodeConflict        = "CONFLICT"
	CodeImmutable       = "IMMUTABLE"
	CodeRateLimited     = "RATE_LIMITED"
	CodeUnavailable     = "UNAVAILABLE"
	CodeInternal        = "INTERNAL"
)

// Websocket close codes the broker uses (graphql-transport-ws and RFC 6455).
const (
	CloseNormal          = 1000
	CloseServiceRestart  = 1012 // the broker is shutting down: reconnect
	CloseTryAgainLater   = 1013 // too many websockets for this key: reconnect later
	CloseBadRequest      = 4400
	CloseUnauthenticated = 4401 // bad key, rotated key, or deleted principal: stop
	CloseInitTimeout     = 4408
	CloseDuplicateID     = 4409
	CloseTooManyInits    = 4429
	CloseInternal        = 4500 // the key could not be checked: reconnect
)

// GraphQLErrors are the GraphQL errors err carries: those of an answer
// (gqlerror.List), of an answer other than HTTP 200 (*graphql.HTTPError), or
// of a subscription ([SubscriptionError]); nil when it carries none.
func GraphQLErrors(err error) gqlerror.List {
	var list gqlerror.List
	if errors.As(err, &list) {
		return list
	}
	var he *graphql.HTTPError
	if errors.As(err, &he) {
		return he.Response.Errors
	}
	var se *SubscriptionError
	if errors.As(err, &se) {
		return se.Errors
	}
	return nil
}

func asGQLError(err error) *gqlerror.Error {
	var ge *gqlerror.Error
	if errors.As(err, &ge) {
		return ge
	}
	return nil
}

// ErrorCode is the extensions.code of the first GraphQL error err carries
// that has one ("" when none does).
func ErrorCode(err error) string {
	for _, e := range GraphQLErrors(err) {
		if c, ok := e.Extensions["code"].(string); ok && c != "" {
			return c
		}
	}
	return ""
}

// HasCode says whether any GraphQL error err carries has the code.
func HasCode(err error, code string) bool {
	for _, e := range GraphQLErrors(err) {
		if e.Extensions["code"] == code {
			return true
		}
	}
	return false
}

// RetryAfter is the broker's retry hint (extensions.retryAfter, seconds)
// of the first error that has one.
func RetryAfter(err error) (time.Duration, bool) {
	for _, e := range GraphQLErrors(err) {
		switch v := e.Extensions["retryAfter"].(type) {
		case float64:
			return seconds(v), true
		case int:
			return seconds(float64(v)), true
		case int64:
			return seconds(float64(v)), true
		}
	}
	return 0, false
}

func seconds(v float64) time.Duration {
	v = min(max(v, 0), 3600)
	return time.Duration(math.Ceil(v * float64(time.Second)))
}

// Describe renders err for a person: each GraphQL error as
// "CODE: message (at path)", one per line; other errors as they are.
func Describe(err error) string {
	list := GraphQLErrors(err)
	if len(list) == 0 {
		return err.Error()
	}
	var lines []string
	for _, e := range list {
		s := e.Message
		if c, ok := e.Extensions["code"].(string); ok && c != "" {
			s = c + ": " + s
		}
		if f, ok := e.Extensions["field"].(string); ok && f != "" && !strings.Contains(e.Message, f) {
			s += " (field " + f + ")"
		}
		if len(e.Path) > 0 {
			s += " (at " + e.Path.String() + ")"
		}
		lines = append(lines, s)
	}
	return strings.Join(lines, "\n")
}

// SubscriptionError is a subscription's "error" message, or a payload
// that carried errors.
type SubscriptionError struct {
	Operation string
	Errors    gqlerror.List
}

func (e *SubscriptionError) Error() string {
	return e.Operation + ": " + Describe(e.Errors)
}

// Unwrap gives the GraphQL errors (for errors.As to a *gqlerror.Error).
func (e *SubscriptionError) Unwrap() []error { return e.Errors.Unwrap() }

// CloseError is how the broker (or the network) ended a websocket.
type CloseError struct {
	Code   int    // the close code; 1006 when the connection ended without one
	Reason string // the broker's reason, if it gave one
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("websocket closed (%d)", e.Code)
	}
	return fmt.Sprintf("websocket closed (%d): %s", e.Code, e.Reason)
}

// ErrUnauthenticated ends a subscription whose key the broker refused
// (close code 4401, or the code UNAUTHENTICATED): retrying cannot help.
var ErrUnauthenticated = errors.New("the broker refused the API key (missing, wrong, rotated, or its owner deleted)")

// closeErrorOf converts coder/websocket's close errors; nil for others.
func closeErrorOf(err error) *CloseError {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return &CloseError{Code: int(ce.Code), Reason: ce.Reason}
	}
	return nil
}
