package models

import (
	"context"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// CreateDeploymentObject validates the YAML, computes its checksum and
// inserts it; the returned object carries its SequenceID.
func CreateDeploymentObject(ctx context.Context, db bun.IDB, scope Scope, in CreateDeploymentObjectInput) (*DeploymentObject, error) {
	return nil, errNotYet
}

// GetDeploymentObject returns one visible deployment object.
func GetDeploymentObject(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, includeDeleted bool) (*DeploymentObject, error) {
	return nil, errNotYet
}

// ListDeploymentObjects lists visible objects, sequence_id descending.
func ListDeploymentObjects(ctx context.Context, db bun.IDB, scope Scope, filter *DeploymentObjectFilter, args ListArgs) (*Page[DeploymentObject], error) {
	return nil, errNotYet
}

// LatestDeploymentObject returns the stack's live object with the highest
// sequence (a deletion marker included), or nil, nil when it has none.
func LatestDeploymentObject(ctx context.Context, db bun.IDB, scope Scope, stackID uuid.UUID) (*DeploymentObject, error) {
	return nil, errNotYet
}

// RollbackStack re-submits an older object's content as a new object.
func RollbackStack(ctx context.Context, db bun.IDB, scope Scope, stackID, toDeploymentObjectID uuid.UUID) (*DeploymentObject, error) {
	return nil, errNotYet
}

// DeleteDeploymentObject soft-deletes one object.
func DeleteDeploymentObject(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*DeploymentObject, error) {
	return nil, errNotYet
}
