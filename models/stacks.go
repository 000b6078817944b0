package models

import (
	"context"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// CreateStack creates a stack with its labels and annotations in one
// transaction (admins, or generators for themselves).
func CreateStack(ctx context.Context, db bun.IDB, scope Scope, in CreateStackInput) (*Stack, error) {
	return nil, errNotYet
}

// GetStack returns one visible stack.
func GetStack(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, includeDeleted bool) (*Stack, error) {
	return nil, errNotYet
}

// ListStacks lists visible stacks in (created_at, id) order.
func ListStacks(ctx context.Context, db bun.IDB, scope Scope, filter *StackFilter, args ListArgs) (*Page[Stack], error) {
	return nil, errNotYet
}

// UpdateStack changes the given fields.
func UpdateStack(ctx context.Context, db bun.IDB, scope Scope, in UpdateStackInput) (*Stack, error) {
	return nil, errNotYet
}

// DeleteStack soft-deletes a stack (its objects go, a deletion marker comes),
// or, when hard (admins only), removes it and everything under it.
func DeleteStack(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, hard bool) (*Stack, error) {
	return nil, errNotYet
}

// RestoreStack undoes a soft delete (admins only).
func RestoreStack(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*Stack, error) {
	return nil, errNotYet
}

// AddStackLabel adds a label (Conflict when present).
func AddStackLabel(ctx context.Context, db bun.IDB, scope Scope, stackID uuid.UUID, label string) (*Stack, error) {
	return nil, errNotYet
}

// RemoveStackLabel removes a label (NotFound when absent).
func RemoveStackLabel(ctx context.Context, db bun.IDB, scope Scope, stackID uuid.UUID, label string) (*Stack, error) {
	return nil, errNotYet
}

// SetStackAnnotation sets key = value, replacing any value of that key.
func SetStackAnnotation(ctx context.Context, db bun.IDB, scope Scope, stackID uuid.UUID, key, value string) (*Stack, error) {
	return nil, errNotYet
}

// RemoveStackAnnotation removes the key (NotFound when absent).
func RemoveStackAnnotation(ctx context.Context, db bun.IDB, scope Scope, stackID uuid.UUID, key string) (*Stack, error) {
	return nil, errNotYet
}
