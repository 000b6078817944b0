package models

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Kind classifies domain errors. The GraphQL error presenter maps each kind
// to one extensions.code; nothing else decides codes.
type Kind string

const (
	KindInvalid         Kind = "BAD_USER_INPUT"
	KindNotFound        Kind = "NOT_FOUND"
	KindConflict        Kind = "CONFLICT"
	KindImmutable       Kind = "IMMUTABLE"
	KindForbidden       Kind = "FORBIDDEN"
	KindUnauthenticated Kind = "UNAUTHENTICATED"
	KindRateLimited     Kind = "RATE_LIMITED"
	// KindUnavailable is a transient fault of the database (connection
	// lost, serialization failure or deadlock, statement timeout, shutdown,
	// too many connections): nothing is wrong with the request, and sending
	// it again after RetryAfter seconds may succeed. A write answered
	// UNAVAILABLE may or may not have been committed.
	KindUnavailable Kind = "UNAVAILABLE"
	KindRowBudget   Kind = "ROW_BUDGET_EXCEEDED" // a read would pass the response's RowBudget
	KindInternal    Kind = "INTERNAL"
)

// UnavailableRetryAfter is the RetryAfter of KindUnavailable, in seconds.
const UnavailableRetryAfter = 1

// Error is a domain error. Message is safe to show to clients; Err (the
// cause) is for the server log only.
type Error struct {
	Kind       Kind
	Message    string
	Field      string  // the input field at fault (KindInvalid)
	Constraint string  // the constraint that clashed (KindConflict)
	RetryAfter float64 // seconds (KindRateLimited, KindUnavailable)
	MaxBytes   int64   // the body limit a request passed (KindInvalid), when that is what it did
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Kind, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorKind returns the kind of the first *Error in err's chain, or
// KindInternal.
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// Invalid reports bad input in the named field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound reports a missing (or not visible) object. what names it: "stack".
func NotFound(what string) *Error {
	return &Error{Kind: KindNotFound, Message: what + " not found"}
}

// Forbidden reports an operation the caller's role may not perform.
func Forbidden(format string, args ...any) *Error {
	return &Error{Kind: KindForbidden, Message: fmt.Sprintf(format, args...)}
}

// constraintFields names the input field behind each CHECK constraint and
// the human description behind each unique constraint.
var constraintFields = map[string]string{
	"generators_name_check":                  "name",
	"generators_rate_limit_per_minute_check": "rateLimitPerMinute",
	"stacks_name_check":                      "name",
	"agents_name_check":                      "name",
	"agents_cluster_name_check":              "clusterName",
	"agents_status_check":                    "status",
	"agent_events_event_type_check":          "eventType",
	"agent_events_status_check":              "status",
	"stack_labels_label_check":               "label",
	"agent_labels_label_check":               "label",
	"stack_annotations_key_check":            "key",
	"stack_annotations_value_check":          "value",
	"agent_annotations_key_check":            "key",
	"agent_annotations_value_check":          "value",
	"deployment_objects_yaml_checksum_check": "yamlChecksum",
	"agent_events_message_check":             "message",
	// Raised by brokkr_check_children_cap (migration 0004).
	"stack_labels_cap":      "labels",
	"agent_labels_cap":      "labels",
	"stack_annotations_cap": "annotations",
	"agent_annotations_cap": "annotations",
}

// constraintMessages are the client messages of CHECK constraints and
// trigger-raised check violations whose generic "invalid <field>" would not
// say what to change.
var constraintMessages = map[string]string{
	"agent_events_message_check": fmt.Sprintf("message must be at most %d bytes", MaxEventMessageBytes),
	"stack_labels_cap":           fmt.Sprintf("a stack has at most %d labels", MaxLabels),
	"agent_labels_cap":           fmt.Sprintf("an agent has at most %d labels", MaxLabels),
	"stack_annotations_cap":      fmt.Sprintf("a stack has at most %d annotations", MaxAnnotations),
	"agent_annotations_cap":      fmt.Sprintf("an agent has at most %d annotations", MaxAnnotations),
}

var uniqueMessages = map[string]string{
	"generators_name_live_key":            "a generator with this name already exists",
	"stacks_generator_id_name_live_key":   "this generator already has a stack with this name",
	"agents_name_cluster_name_live_key":   "an agent with this name already exists in this cluster",
	"agent_targets_agent_id_stack_id_key": "the agent already targets this stack",
	"stack_labels_stack_id_label_key":     "the stack already has this label",
	"agent_labels_agent_id_label_key":     "the agent already has this label",
	"admin_keys_one_live_key":             "an admin key already exists",
}

// Translate turns a database error into a domain *Error. Errors that are
// already domain errors pass through; sql.ErrNoRows becomes NotFound(what);
// a transient fault of the database becomes KindUnavailable (see
// unavailable); anything unrecognised becomes KindInternal with the cause
// kept for the log.
func Translate(err error, what string) error {
	if err == nil {
		return nil
	}
	var de *Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return &Error{Kind: KindNotFound, Message: what + " not found", Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Kind: KindInternal, Message: "request cancelled", Err: err}
	}
	if u := unavailable(err); u != nil {
		return u
	}
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return &Error{Kind: KindInternal, Message: "internal error", Err: err}
	}
	switch pg.Code {
	case "23505": // unique_violation
		msg, ok := uniqueMessages[pg.ConstraintName]
		if !ok {
			msg = "already exists"
		}
		return &Error{Kind: KindConflict, Message: msg, Constraint: pg.ConstraintName, Err: err}
	case "23514": // check_violation
		field := constraintFields[pg.ConstraintName]
		if field == "" {
			field = strings.TrimSuffix(pg.ConstraintName, "_check")
		}
		msg := constraintMessages[pg.ConstraintName]
		if msg == "" {
			msg = "invalid " + field
		}
		return &Error{Kind: KindInvalid, Field: field, Message: msg, Constraint: pg.ConstraintName, Err: err}
	case "23503": // foreign_key_violation: the referenced row does not exist
		return &Error{Kind: KindNotFound, Message: referencedThing(pg.ConstraintName) + " not found", Constraint: pg.ConstraintName, Err: err}
	case "23502": // not_null_violation
		return &Error{Kind: KindInvalid, Field: pg.ColumnName, Message: pg.ColumnName + " is required", Err: err}
	case "22001": // string_data_right_truncation (varchar limits)
		return &Error{Kind: KindInvalid, Message: "value too long", Err: err}
	case "22P02", "22021": // invalid text representation, bad encoding
		return &Error{Kind: KindInvalid, Message: "malformed value", Err: err}
	case "BR001":
		return &Error{Kind: KindImmutable, Message: "deployment objects are immutable: submit a new one instead", Err: err}
	case "BR002":
		return &Error{Kind: KindNotFound, Message: strings.TrimSuffix(pg.ColumnName, "_id") + " not found (deleted)", Err: err}
	}
	return &Error{Kind: KindInternal, Message: "internal error", Err: err}
}

// unavailable returns KindUnavailable for a transient fault of the
// database, nil for anything else. The faults are:
//   - the connection lost or never made: class 08 and the shutdowns of class
//     57 (57P01 is what pg_terminate_backend sends), too many connections
//     (53300), and the driver's own view of a dead connection (EOF, network
//     errors, a closed or bad connection, a failed connect);
//   - a serialization failure or deadlock (40001, 40P01): the transaction
//     was rolled back;
//   - a statement cancelled by statement_timeout or by an administrator
//     (57014), or a lock_timeout (55P03), or the server's own deadline for
//     the request (context.DeadlineExceeded).
func unavailable(err error) *Error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		msg := ""
		switch {
		case pg.Code == "40001", pg.Code == "40P01":
			msg = "the database rolled back a conflicting concurrent change: retry"
		case pg.Code == "57014" && strings.Contains(pg.Message, "statement timeout"):
			msg = "the database statement took too long (statement timeout): retry later, or ask for less"
		case pg.Code == "57014", pg.Code == "55P03":
			msg = "the database statement was cancelled: retry"
		case pg.Code == "53300", pg.Code == "57P03":
			msg = "the database is not accepting connections now: retry"
		case strings.HasPrefix(pg.Code, "08"), pg.Code == "57P01", pg.Code == "57P02", pg.Code == "57P05":
			msg = "the connection to the database was lost: retry"
		default:
			return nil
		}
		return &Error{Kind: KindUnavailable, Message: msg, RetryAfter: UnavailableRetryAfter, Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return &Error{Kind: KindUnavailable, Message: "the request took too long: retry later, or ask for less", RetryAfter: UnavailableRetryAfter, Err: err}
	}
	if connectionLost(err) {
		return &Error{Kind: KindUnavailable, Message: "the connection to the database was lost: retry", RetryAfter: UnavailableRetryAfter, Err: err}
	}
	return nil
}

// connectionLost reports the driver's errors for a connection that died or
// could not be made, other than a PostgreSQL error message.
func connectionLost(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err)
}

func referencedThing(constraint string) string {
	for _, s := range []string{"generator", "stack", "agent", "deployment_object"} {
		if strings.HasSuffix(constraint, "_"+s+"_id_fkey") {
			return strings.ReplaceAll(s, "_", " ")
		}
	}
	return "referenced object"
}

// Unauthenticated reports a missing, malformed or unknown API key.
func Unauthenticated(format string, args ...any) *Error {
	return &Error{Kind: KindUnauthenticated, Message: fmt.Sprintf(format, args...)}
}
