package models

import (
	"context"
	"sort"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// CreateDeploymentObject validates the YAML (Invalid("yamlContent")),
// computes its checksum and inserts it in one statement that also checks
// the stack is live and writable by the scope (admins, or the owning
// generator; agents are Forbidden). The returned object carries its
// SequenceID.
func CreateDeploymentObject(ctx context.Context, db bun.IDB, scope Scope, in CreateDeploymentObjectInput) (*DeploymentObject, error) {
	const name = "CreateDeploymentObject"
	if err := requireRole(scope, "submitting deployment objects", RoleAdmin, RoleGenerator); err != nil {
		return nil, op(name, "stack", err)
	}
	if err := ValidateYAML(in.YamlContent); err != nil {
		return nil, op(name, "stack", err)
	}
	d, err := insertObject(ctx, db, scope, in.StackID, in.YamlContent, Checksum(in.YamlContent))
	return d, op(name, "stack", err)
}

// insertObject inserts content into a live stack the scope may write to;
// sql.ErrNoRows when there is no such stack.
//
// It is the hot write path (DESIGN §7: createDeploymentObject at least half
// the throughput of a raw INSERT), so it is one statement, the scope check
// and the insert together, sent prepared (scanPrepared): its text varies
// only with the scope's role, so each connection prepares it once and each
// insert is one round trip with nothing to parse or plan.
func insertObject(ctx context.Context, db bun.IDB, scope Scope, stackID uuid.UUID, content, checksum string) (*DeploymentObject, error) {
	sc := stackScope(scope, "s")
	q := `INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
		SELECT s.id, ?, ? FROM stacks AS s WHERE s.id = ? AND s.deleted_at IS NULL AND (` + sc.sql + `)
		RETURNING `
	args := append([]any{content, checksum, stackID}, sc.args...)
	d := &DeploymentObject{YamlContent: content}
	handled, err := scanPrepared(ctx, db, writes, q+objectColumns, args, &d.ID, &d.SequenceID, &d.StackID, &d.YamlChecksum,
		&d.SubmittedAt, &d.IsDeletionMarker, &d.CreatedAt, &d.UpdatedAt, &d.DeletedAt)
	if !handled { // another bun.IDB: through bun, arguments inlined
		err = db.NewRaw(q+"*", args...).Scan(ctx, d)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// objectColumns are what insertObject returns, in its Scan's order
// (yaml_content is the caller's own).
const objectColumns = `id, sequence_id, stack_id, yaml_checksum, submitted_at, is_deletion_marker, created_at, updated_at, deleted_at`

// GetDeploymentObject returns one visible deployment object.
func GetDeploymentObject(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, includeDeleted bool) (*DeploymentObject, error) {
	if err := checkIncludeDeleted(scope, includeDeleted); err != nil {
		return nil, op("GetDeploymentObject", "deployment object", err)
	}
	d := new(DeploymentObject)
	q := db.NewSelect().Model(d).ColumnExpr("d.*").Where("d.id = ?", id) // d.*: SequenceID is scanonly
	q = where(q, deploymentObjectScope(scope, "d"))
	q = where(q, liveCond("d", includeDeleted))
	if err := q.Scan(ctx); err != nil {
		return nil, op("GetDeploymentObject", "deployment object", err)
	}
	return d, nil
}

// objectListConds are the conditions of a deployment-object list over d:
// scope, liveness and the filter.
func objectListConds(scope Scope, filter *DeploymentObjectFilter, includeDeleted bool) ([]cond, error) {
	if err := checkIncludeDeleted(scope, includeDeleted); err != nil {
		return nil, err
	}
	cs := []cond{deploymentObjectScope(scope, "d"), liveCond("d", includeDeleted)}
	if filter != nil && filter.StackID != nil {
		cs = append(cs, cond{sql: "d.stack_id = ?", args: []any{*filter.StackID}})
	}
	if filter != nil && filter.IsDeletionMarker != nil {
		cs = append(cs, cond{sql: "d.is_deletion_marker = ?", args: []any{*filter.IsDeletionMarker}})
	}
	return cs, nil
}

func objectListQuery(db bun.IDB, scope Scope, filter *DeploymentObjectFilter, args ListArgs) (*bun.SelectQuery, error) {
	cs, err := objectListConds(scope, filter, args.IncludeDeleted)
	if err != nil {
		return nil, err
	}
	return whereAll(db.NewSelect().Model((*DeploymentObject)(nil)), cs), nil
}

// ListDeploymentObjects lists visible objects, sequence_id descending.
func ListDeploymentObjects(ctx context.Context, db bun.IDB, scope Scope, filter *DeploymentObjectFilter, args ListArgs) (*Page[DeploymentObject], error) {
	q, err := objectListQuery(db, scope, filter, args)
	if err != nil {
		return nil, op("ListDeploymentObjects", "deployment object", err)
	}
	p, err := single(runPage[DeploymentObject, deploymentObjectRow](ctx, db, q, deploymentObjectPage, args, nil))
	return p, op("ListDeploymentObjects", "deployment object", err)
}

// LatestDeploymentObject returns the stack's live object with the highest
// sequence (a deletion marker included), or nil, nil when it has none. The
// stack must be visible and live (NotFound otherwise).
func LatestDeploymentObject(ctx context.Context, db bun.IDB, scope Scope, stackID uuid.UUID) (*DeploymentObject, error) {
	if _, err := GetStack(ctx, db, scope, stackID, false); err != nil {
		return nil, err
	}
	m, err := LatestDeploymentObjectsByStacks(ctx, db, scope, []uuid.UUID{stackID})
	if err != nil {
		return nil, op("LatestDeploymentObject", "deployment object", err)
	}
	return m[stackID], nil
}

// RollbackStack re-submits an older object's content as a new object. The
// object must be a live, non-marker object of that stack (NotFound /
// Invalid("toDeploymentObjectId")); the stack must be writable by the scope.
func RollbackStack(ctx context.Context, db bun.IDB, scope Scope, stackID, toDeploymentObjectID uuid.UUID) (*DeploymentObject, error) {
	const name = "RollbackStack"
	var d *DeploymentObject
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := writableStack(ctx, tx, scope, stackID, false); err != nil {
			return err
		}
		old := new(DeploymentObject)
		err := tx.NewSelect().Model(old).ColumnExpr("d.*").Where("d.id = ?", toDeploymentObjectID).
			Where("d.stack_id = ?", stackID).Where("d.deleted_at IS NULL").Scan(ctx)
		if err != nil {
			return Translate(err, "deployment object")
		}
		if old.IsDeletionMarker {
			return Invalid("toDeploymentObjectId", "cannot roll back to a deletion marker")
		}
		d, err = insertObject(ctx, tx, scope, stackID, old.YamlContent, old.YamlChecksum)
		return err
	})
	if err != nil {
		return nil, op(name, "stack", err)
	}
	return d, nil
}

// DeleteDeploymentObject soft-deletes one object (admins, or the owning
// generator).
func DeleteDeploymentObject(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*DeploymentObject, error) {
	const name = "DeleteDeploymentObject"
	if err := requireRole(scope, "deleting deployment objects", RoleAdmin, RoleGenerator); err != nil {
		return nil, op(name, "deployment object", err)
	}
	d := new(DeploymentObject)
	q := db.NewUpdate().Model(d).Set("deleted_at = now()").Where("d.id = ?", id).Where("d.deleted_at IS NULL")
	if err := where(q, deploymentObjectScope(scope, "d")).Returning("*").Scan(ctx); err != nil {
		return nil, op(name, "deployment object", err)
	}
	return d, nil
}

// bySequence sorts objects by sequence ascending.
func bySequence(ds []*DeploymentObject) {
	sort.Slice(ds, func(i, j int) bool { return ds[i].SequenceID < ds[j].SequenceID })
}
