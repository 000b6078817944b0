package models

import (
	"context"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/apikey"
)

// CreateGenerator creates a generator and its API key (admins only). The
// plaintext key is in the result and nowhere else; only its hash is stored.
func CreateGenerator(ctx context.Context, db bun.IDB, scope Scope, in CreateGeneratorInput) (*GeneratorWithKey, error) {
	const name = "CreateGenerator"
	if err := requireRole(scope, "creating generators", RoleAdmin); err != nil {
		return nil, op(name, "generator", err)
	}
	if err := validateName("name", in.Name); err != nil {
		return nil, op(name, "generator", err)
	}
	if err := validateRateLimit(in.RateLimitPerMinute); err != nil {
		return nil, op(name, "generator", err)
	}
	key, hash, err := apikey.New("generator")
	if err != nil {
		return nil, op(name, "generator", err)
	}
	g := &Generator{Name: in.Name, Description: in.Description, RateLimitPerMinute: in.RateLimitPerMinute,
		PakHash: &hash, IsActive: true}
	if _, err := db.NewInsert().Model(g).Returning("*").Exec(ctx); err != nil {
		return nil, op(name, "generator", err)
	}
	return &GeneratorWithKey{Generator: g, APIKey: key}, nil
}

// GetGenerator returns one generator: admins see all, a generator only
// itself, agents none (NotFound). includeDeleted: admins only (Forbidden).
func GetGenerator(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, includeDeleted bool) (*Generator, error) {
	if err := checkIncludeDeleted(scope, includeDeleted); err != nil {
		return nil, op("GetGenerator", "generator", err)
	}
	g := new(Generator)
	q := db.NewSelect().Model(g).Where("g.id = ?", id)
	q = where(q, generatorScope(scope, "g"))
	q = where(q, liveCond("g", includeDeleted))
	if err := q.Scan(ctx); err != nil {
		return nil, op("GetGenerator", "generator", err)
	}
	return g, nil
}

// generatorListConds are the conditions of a generator list over g: scope,
// liveness and the filter.
func generatorListConds(scope Scope, filter *GeneratorFilter, includeDeleted bool) ([]cond, error) {
	if err := checkIncludeDeleted(scope, includeDeleted); err != nil {
		return nil, err
	}
	cs := []cond{generatorScope(scope, "g"), liveCond("g", includeDeleted)}
	if filter != nil && filter.Name != nil {
		cs = append(cs, cond{sql: "g.name = ?", args: []any{*filter.Name}})
	}
	if filter != nil && filter.IsActive != nil {
		cs = append(cs, cond{sql: "g.is_active = ?", args: []any{*filter.IsActive}})
	}
	return cs, nil
}

// ListGenerators lists generators in (created_at, id) order.
func ListGenerators(ctx context.Context, db bun.IDB, scope Scope, filter *GeneratorFilter, args ListArgs) (*Page[Generator], error) {
	cs, err := generatorListConds(scope, filter, args.IncludeDeleted)
	if err != nil {
		return nil, op("ListGenerators", "generator", err)
	}
	q := whereAll(db.NewSelect().Model((*Generator)(nil)), cs)
	p, err := single(runPage[Generator, generatorRow](ctx, db, q, generatorPage, args, nil))
	return p, op("ListGenerators", "generator", err)
}

// UpdateGenerator changes the given fields (admins only).
func UpdateGenerator(ctx context.Context, db bun.IDB, scope Scope, in UpdateGeneratorInput) (*Generator, error) {
	const name = "UpdateGenerator"
	if err := requireRole(scope, "updating generators", RoleAdmin); err != nil {
		return nil, op(name, "generator", err)
	}
	g := &Generator{ID: in.ID}
	q := db.NewUpdate().Model(g).Where("g.id = ?", in.ID).Where("g.deleted_at IS NULL")
	q = where(q, generatorScope(scope, "g"))
	set := false
	if in.Name != nil {
		if err := validateName("name", *in.Name); err != nil {
			return nil, op(name, "generator", err)
		}
		q, set = q.Set("name = ?", *in.Name), true
	}
	if in.Description != nil {
		q, set = q.Set("description = ?", *in.Description), true
	}
	if in.IsActive != nil {
		q, set = q.Set("is_active = ?", *in.IsActive), true
	}
	if limit, ok := in.RateLimitPerMinute.ValueOK(); ok { // null: back to the server default
		if err := validateRateLimit(limit); err != nil {
			return nil, op(name, "generator", err)
		}
		q, set = q.Set("rate_limit_per_minute = ?", limit), true
	}
	if !set {
		return GetGenerator(ctx, db, scope, in.ID, false)
	}
	if err := q.Returning("*").Scan(ctx); err != nil {
		return nil, op(name, "generator", err)
	}
	return g, nil
}

// RotateGeneratorKey replaces a generator's key (admins, or the generator
// itself); the old key stops working at once.
func RotateGeneratorKey(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*GeneratorWithKey, error) {
	const name = "RotateGeneratorKey"
	if err := requireRole(scope, "rotating generator keys", RoleAdmin, RoleGenerator); err != nil {
		return nil, op(name, "generator", err)
	}
	key, hash, err := apikey.New("generator")
	if err != nil {
		return nil, op(name, "generator", err)
	}
	g := new(Generator)
	q := db.NewUpdate().Model(g).Set("pak_hash = ?", hash).Where("g.id = ?", id).Where("g.deleted_at IS NULL")
	q = where(q, generatorScope(scope, "g"))
	if err := q.Returning("*").Scan(ctx); err != nil {
		return nil, op(name, "generator", err)
	}
	return &GeneratorWithKey{Generator: g, APIKey: key}, nil
}

// DeleteGenerator soft-deletes a generator (cascading to its stacks), or
// removes it and everything under it when hard. Admins only. Returns the
// generator as it is after a soft delete, or as it was before a hard one.
func DeleteGenerator(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID, hard bool) (*Generator, error) {
	const name = "DeleteGenerator"
	if err := requireRole(scope, "deleting generators", RoleAdmin); err != nil {
		return nil, op(name, "generator", err)
	}
	g := new(Generator)
	var err error
	if hard {
		err = db.NewDelete().Model(g).Where("g.id = ?", id).Returning("*").Scan(ctx)
	} else {
		err = db.NewUpdate().Model(g).Set("deleted_at = now()").
			Where("g.id = ?", id).Where("g.deleted_at IS NULL").Returning("*").Scan(ctx)
	}
	if err != nil {
		return nil, op(name, "generator", err)
	}
	return g, nil
}

// RestoreGenerator undoes a soft delete and its cascade (admins only).
// Restoring a live generator is Invalid("id"); a name taken meanwhile is a
// Conflict.
func RestoreGenerator(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*Generator, error) {
	const name = "RestoreGenerator"
	if err := requireRole(scope, "restoring generators", RoleAdmin); err != nil {
		return nil, op(name, "generator", err)
	}
	g := new(Generator)
	err := db.NewUpdate().Model(g).Set("deleted_at = NULL").
		Where("g.id = ?", id).Where("g.deleted_at IS NOT NULL").Returning("*").Scan(ctx)
	if err != nil {
		if ErrorKind(Translate(err, "generator")) == KindNotFound {
			if _, gerr := GetGenerator(ctx, db, scope, id, false); gerr == nil {
				return nil, op(name, "generator", Invalid("id", "generator is not deleted"))
			}
		}
		return nil, op(name, "generator", err)
	}
	return g, nil
}
