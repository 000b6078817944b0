package models

import (
	"context"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// PrincipalForKeyHash finds whose key has this hash: the live admin key, a
// live active generator, or a live agent. Unauthenticated otherwise.
func PrincipalForKeyHash(ctx context.Context, db bun.IDB, hash string) (Scope, error) {
	return Scope{}, errNotYet
}

// EnsureAdminKey creates the admin key when there is none (first start) and
// returns its plaintext with created = true; otherwise "", false.
func EnsureAdminKey(ctx context.Context, db bun.IDB) (plaintext string, created bool, err error) {
	return "", false, errNotYet
}

// RotateAdminKey retires the live admin key and returns a new one.
func RotateAdminKey(ctx context.Context, db bun.IDB) (plaintext string, err error) {
	return "", errNotYet
}

// TouchGeneratorActivity sets last_active_at = now() unless it was set in
// the last few seconds (cheap to call on every request).
func TouchGeneratorActivity(ctx context.Context, db bun.IDB, generatorID uuid.UUID) error {
	return errNotYet
}
