// Package scalar holds Brokkr's GraphQL scalar marshallers. They wrap gqlgen's
// own (graphql.UUID, graphql.Int64, graphql.Time) so that a value the client
// got wrong is reported in Brokkr's error vocabulary (BAD_USER_INPUT) with a
// message of ours rather than a parser's.
package scalar

import (
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

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
