package models

import (
	"context"
	"database/sql"
	"errors"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// CreateStack creates a stack with its labels and annotations in one
// transaction (admins, or generators for themselves).
func CreateStack(ctx context.Context, db bun.IDB, scope Scope, in CreateStackInput) (*Stack, error) {
	const name = "CreateStack"
	var genID uuid.UUID
	switch scope.Role {
	case RoleAdmin:
		if in.GeneratorID == nil {
			return nil, op(name, "stack", Invalid("generatorId", "generatorId is required"))
		}
		genID = *in.GeneratorID
	case RoleGenerator:
		if in.GeneratorID != nil && *in.GeneratorID != scope.GeneratorID {
			return nil, op(name, "stack", NotFound("generator"))
		}
		genID = scope.GeneratorID
	default:
		return nil, op(name, "stack", Forbidden("creating stacks is not allowed for this key"))
	}
	if err := validateName("name", in.Name); err != nil {
		return nil, op(name, "stack", err)
	}
	if err := validateLabels(in.Labels, in.Annotations); err != nil {
		return nil, op(name, "stack", err)
	}
	s := &Stack{Name: in.Name, Description: in.Description, GeneratorID: genID}
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(s).Returning("*").Exec(ctx); err != nil {
			return err
		}
		if len(in.Labels) > 0 {
			rows := make([]*StackLabel, len(in.Labels))
			for i, l := range in.Labels {
				rows[i] = &StackLabel{StackID: s.ID, Label: l}
			}
			if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
				return err
			}
		}
		if len(in.Annotations) > 0 {
			rows := make([]*StackAnnotation, len(in.Annotations))
			for i, a := range in.Annotations {
				rows[i] = &StackAnnotation{StackID: s.ID, Key: a.Key, Value: a.Value}
			}
			if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, op(name, "stack", err)
	}
	return s, nil
}

// GetStack returns one visible stack.
func GetStack(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, includeDeleted bool) (*Stack, error) {
	if err := checkIncludeDeleted(scope, includeDeleted); err != nil {
		return nil, op("GetStack", "stack", err)
	}
	s := new(Stack)
	q := db.NewSelect().Model(s).Where("s.id = ?", id)
	q = where(q, stackScope(scope, "s"))
	q = where(q, liveCond("s", includeDeleted))
	if err := q.Scan(ctx); err != nil {
		return nil, op("GetStack", "stack", err)
	}
	return s, nil
}

// stackListConds are the conditions of a stack list over s: scope,
// liveness and the filter (Forbidden for includeDeleted without admin,
// Invalid for filter lists past their caps, in that order).
func stackListConds(scope Scope, filter *StackFilter, includeDeleted bool) ([]cond, error) {
	if err := checkIncludeDeleted(scope, includeDeleted); err != nil {
		return nil, err
	}
	cs := []cond{stackScope(scope, "s"), liveCond("s", includeDeleted)}
	if filter == nil {
		return cs, nil
	}
	if err := checkFilterLists(filter.Labels, filter.Annotations); err != nil {
		return nil, err
	}
	if filter.Name != nil {
		cs = append(cs, cond{sql: "s.name = ?", args: []any{*filter.Name}})
	}
	if filter.GeneratorID != nil {
		cs = append(cs, cond{sql: "s.generator_id = ?", args: []any{*filter.GeneratorID}})
	}
	return append(cs, hasAllLabels("s", "stack_labels", "stack_id", filter.Labels),
		hasAllAnnotations("s", "stack_annotations", "stack_id", filter.Annotations)), nil
}

func stackListQuery(db bun.IDB, scope Scope, filter *StackFilter, args ListArgs) (*bun.SelectQuery, error) {
	cs, err := stackListConds(scope, filter, args.IncludeDeleted)
	if err != nil {
		return nil, err
	}
	return whereAll(db.NewSelect().Model((*Stack)(nil)), cs), nil
}

// ListStacks lists visible stacks in (created_at, id) order. Labels and
// annotations in the filter match stacks that have all of them.
func ListStacks(ctx context.Context, db bun.IDB, scope Scope, filter *StackFilter, args ListArgs) (*Page[Stack], error) {
	q, err := stackListQuery(db, scope, filter, args)
	if err != nil {
		return nil, op("ListStacks", "stack", err)
	}
	p, err := single(runPage[Stack, stackRow](ctx, db, q, stackPage, args, nil))
	return p, op("ListStacks", "stack", err)
}

// writableStack checks that the scope may change the (live) stack: admins
// any, generators their own (others' are NotFound), agents none (Forbidden).
// With lock, the row is share-locked until the transaction ends, so the
// stack cannot be deleted under a label or annotation being added.
func writableStack(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, lock bool) (*Stack, error) {
	if err := requireRole(scope, "changing stacks", RoleAdmin, RoleGenerator); err != nil {
		return nil, err
	}
	s := new(Stack)
	q := db.NewSelect().Model(s).Where("s.id = ?", id).Where("s.deleted_at IS NULL")
	q = where(q, stackScope(scope, "s"))
	if lock {
		q = q.For("SHARE")
	}
	if err := q.Scan(ctx); err != nil {
		return nil, Translate(err, "stack")
	}
	return s, nil
}

// UpdateStack changes the given fields (admins, or the owning generator).
func UpdateStack(ctx context.Context, db bun.IDB, scope Scope, in UpdateStackInput) (*Stack, error) {
	const name = "UpdateStack"
	if err := requireRole(scope, "changing stacks", RoleAdmin, RoleGenerator); err != nil {
		return nil, op(name, "stack", err)
	}
	s := new(Stack)
	q := db.NewUpdate().Model(s).Where("s.id = ?", in.ID).Where("s.deleted_at IS NULL")
	q = where(q, stackScope(scope, "s"))
	set := false
	if in.Name != nil {
		if err := validateName("name", *in.Name); err != nil {
			return nil, op(name, "stack", err)
		}
		q, set = q.Set("name = ?", *in.Name), true
	}
	if in.Description != nil {
		q, set = q.Set("description = ?", *in.Description), true
	}
	if !set {
		s, err := writableStack(ctx, db, scope, in.ID, false)
		return s, op(name, "stack", err)
	}
	if err := q.Returning("*").Scan(ctx); err != nil {
		return nil, op(name, "stack", err)
	}
	return s, nil
}

// DeleteStack soft-deletes a stack (its objects go, a deletion marker comes;
// admins, or the owning generator), or, when hard (admins only), removes it
// and everything under it. Returns the stack after a soft delete, or as it
// was before a hard one.
func DeleteStack(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, hard bool) (*Stack, error) {
	const name = "DeleteStack"
	s := new(Stack)
	var err error
	if hard {
		if err := requireRole(scope, "hard deletes", RoleAdmin); err != nil {
			return nil, op(name, "stack", err)
		}
		err = db.NewDelete().Model(s).Where("s.id = ?", id).Returning("*").Scan(ctx)
	} else {
		if err := requireRole(scope, "deleting stacks", RoleAdmin, RoleGenerator); err != nil {
			return nil, op(name, "stack", err)
		}
		err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			q := tx.NewUpdate().Model(s).Set("deleted_at = now()").
				Where("s.id = ?", id).Where("s.deleted_at IS NULL")
			if err := where(q, stackScope(scope, "s")).Returning("*").Scan(ctx); err != nil {
				return err
			}
			// The marker the update's trigger inserted (migration 0002).
			// The caller may see it: it just deleted the stack.
			// d.*: SequenceID is scanonly, left out of bun's column list.
			m := new(DeploymentObject)
			if err := tx.NewSelect().Model(m).ColumnExpr("d.*").Where("d.stack_id = ?", id).Where("d.is_deletion_marker").
				Where("d.deleted_at IS NULL").OrderExpr("d.sequence_id DESC").Limit(1).Scan(ctx); err != nil {
				return err
			}
			m.Stack = s
			s.DeletionMarker = m
			return nil
		})
	}
	if err != nil {
		return nil, op(name, "stack", err)
	}
	return s, nil
}

// RestoreStack undoes a soft delete (admins only): its objects come back,
// its marker retires and its latest content is published again. A stack of
// a deleted generator cannot be restored alone (NotFound: restore the
// generator); restoring a live stack is Invalid("id").
func RestoreStack(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*Stack, error) {
	const name = "RestoreStack"
	if err := requireRole(scope, "restoring stacks", RoleAdmin); err != nil {
		return nil, op(name, "stack", err)
	}
	s := new(Stack)
	err := db.NewUpdate().Model(s).Set("deleted_at = NULL").
		Where("s.id = ?", id).Where("s.deleted_at IS NOT NULL").Returning("*").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		if _, gerr := GetStack(ctx, db, scope, id, false); gerr == nil {
			return nil, op(name, "stack", Invalid("id", "stack is not deleted"))
		}
	}
	if err != nil {
		return nil, op(name, "stack", err)
	}
	return s, nil
}

// AddStackLabel adds a label (Conflict when present).
func AddStackLabel(ctx context.Context, db bun.IDB, scope Scope, stackID uuid.UUID, label string) (*Stack, error) {
	return stackTags.addLabel(ctx, db, scope, "AddStackLabel", stackID, label)
}

// RemoveStackLabel removes a label (NotFound when absent).
func RemoveStackLabel(ctx context.Context, db bun.IDB, scope Scope, stackID uuid.UUID, label string) (*Stack, error) {
	return stackTags.removeLabel(ctx, db, scope, "RemoveStackLabel", stackID, label)
}

// SetStackAnnotation sets key = value, replacing any value of that key.
func SetStackAnnotation(ctx context.Context, db bun.IDB, scope Scope, stackID uuid.UUID, key, value string) (*Stack, error) {
	return stackTags.setAnnotation(ctx, db, scope, "SetStackAnnotation", stackID, key, value)
}

// RemoveStackAnnotation removes the key (NotFound when absent).
func RemoveStackAnnotation(ctx context.Context, db bun.IDB, scope Scope, stackID uuid.UUID, key string) (*Stack, error) {
	return stackTags.removeAnnotation(ctx, db, scope, "RemoveStackAnnotation", stackID, key)
}
