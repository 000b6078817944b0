package models

import (
	"context"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Labels and annotations of stacks and agents: the four commands (add and
// remove a label, set and remove an annotation) are the same for both,
// written once over a description of where each keeps them.

// tagged describes an object carrying labels and annotations.
type tagged[T any] struct {
	what  string // the object's name in errors: "stack", "agent"
	owner string // the owning column of its label and annotation tables
	// writable checks that the scope may change the object and that it is
	// live, share-locking its row until the transaction ends (so it cannot
	// be deleted under a label being added).
	writable    func(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*T, error)
	label       func(id uuid.UUID, label string) any      // a label row
	annotation  func(id uuid.UUID, key, value string) any // an annotation row
	labels      any                                       // the label table's model, for deletes
	annotations any                                       // the annotation table's model
}

var stackTags = tagged[Stack]{
	what: "stack", owner: "stack_id",
	writable: func(ctx context.Context, db bun.IDB, scope Scope, id uuid.UUID) (*Stack, error) {
		return writableStack(ctx, db, scope, id, true)
	},
	label: func(id uuid.UUID, l string) any { return &StackLabel{StackID: id, Label: l} },
	annotation: func(id uuid.UUID, k, v string) any {
		return &StackAnnotation{StackID: id, Key: k, Value: v}
	},
	labels: (*StackLabel)(nil), annotations: (*StackAnnotation)(nil),
}

var agentTags = tagged[Agent]{
	what: "agent", owner: "agent_id",
	writable: writableAgent,
	label:    func(id uuid.UUID, l string) any { return &AgentLabel{AgentID: id, Label: l} },
	annotation: func(id uuid.UUID, k, v string) any {
		return &AgentAnnotation{AgentID: id, Key: k, Value: v}
	},
	labels: (*AgentLabel)(nil), annotations: (*AgentAnnotation)(nil),
}

// addLabel adds a label (Conflict when present).
func (k tagged[T]) addLabel(ctx context.Context, db bun.IDB, scope Scope, name string, id uuid.UUID, label string) (*T, error) {
	if err := validateToken("label", label); err != nil {
		return nil, op(name, k.what, err)
	}
	return k.change(ctx, db, scope, name, id, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewInsert().Model(k.label(id, label)).Exec(ctx)
		return err
	})
}

// removeLabel removes a label (NotFound when absent).
func (k tagged[T]) removeLabel(ctx context.Context, db bun.IDB, scope Scope, name string, id uuid.UUID, label string) (*T, error) {
	return k.change(ctx, db, scope, name, id, func(ctx context.Context, tx bun.Tx) error {
		return deleteOne(ctx, tx.NewDelete().Model(k.labels).
			Where("? = ?", bun.Ident(k.owner), id).Where("label = ?", label), "label")
	})
}

// setAnnotation sets key = value, replacing any value of that key.
func (k tagged[T]) setAnnotation(ctx context.Context, db bun.IDB, scope Scope, name string, id uuid.UUID, key, value string) (*T, error) {
	if err := validateToken("key", key); err != nil {
		return nil, op(name, k.what, err)
	}
	if err := validateToken("value", value); err != nil {
		return nil, op(name, k.what, err)
	}
	return k.change(ctx, db, scope, name, id, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewInsert().Model(k.annotation(id, key, value)).
			On("CONFLICT (?, key) DO UPDATE", bun.Ident(k.owner)).Set("value = EXCLUDED.value").Exec(ctx)
		return err
	})
}

// removeAnnotation removes the key (NotFound when absent).
func (k tagged[T]) removeAnnotation(ctx context.Context, db bun.IDB, scope Scope, name string, id uuid.UUID, key string) (*T, error) {
	return k.change(ctx, db, scope, name, id, func(ctx context.Context, tx bun.Tx) error {
		return deleteOne(ctx, tx.NewDelete().Model(k.annotations).
			Where("? = ?", bun.Ident(k.owner), id).Where("key = ?", key), "annotation")
	})
}

// change runs write in one transaction after writable, and returns the
// object as writable read it.
func (k tagged[T]) change(ctx context.Context, db bun.IDB, scope Scope, name string, id uuid.UUID, write func(context.Context, bun.Tx) error) (*T, error) {
	var obj *T
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if obj, err = k.writable(ctx, tx, scope, id); err != nil {
			return err
		}
		return write(ctx, tx)
	})
	if err != nil {
		return nil, op(name, k.what, err)
	}
	return obj, nil
}

// deleteOne runs q and answers NotFound(what) when it removed nothing.
func deleteOne(ctx context.Context, q *bun.DeleteQuery, what string) error {
	res, err := q.Exec(ctx)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return NotFound(what)
	}
	return nil
}
