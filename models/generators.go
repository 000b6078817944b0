package models

import (
	"context"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// CreateGenerator creates a generator and its API key (admins only). The
// plaintext key is in the result and nowhere else; only its hash is stored.
func CreateGenerator(ctx context.Context, db bun.IDB, scope Scope, in CreateGeneratorInput) (*GeneratorWithKey, error) {
	return nil, errNotYet
}

// GetGenerator returns one generator: admins see all, a generator only
// itself, agents none (NotFound). includeDeleted: admins only (Forbidden).
func GetGenerator(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, includeDeleted bool) (*Generator, error) {
	return nil, errNotYet
}

// ListGenerators lists generators in (created_at, id) order.
func ListGenerators(ctx context.Context, db bun.IDB, scope Scope, filter *GeneratorFilter, args ListArgs) (*Page[Generator], error) {
	return nil, errNotYet
}

// UpdateGenerator changes the given fields (admins only).
func UpdateGenerator(ctx context.Context, db bun.IDB, scope Scope, in UpdateGeneratorInput) (*Generator, error) {
	return nil, errNotYet
}

// RotateGeneratorKey replaces a generator's key (admins, or the generator
// itself); the old key stops working at once.
func RotateGeneratorKey(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*GeneratorWithKey, error) {
	return nil, errNotYet
}

// DeleteGenerator soft-deletes a generator (cascading to its stacks), or
// removes it and everything under it when hard. Admins only. Returns the
// generator as it is after a soft delete, or as it was before a hard one.
func DeleteGenerator(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, hard bool) (*Generator, error) {
	return nil, errNotYet
}

// RestoreGenerator undoes a soft delete and its cascade (admins only).
func RestoreGenerator(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*Generator, error) {
	return nil, errNotYet
}
