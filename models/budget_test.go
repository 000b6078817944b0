package models_test

import (
	"errors"
	"math"
	"testing"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

func TestRowBudgetArithmetic(t *testing.T) {
	t.Parallel()
	var none *models.RowBudget
	if none != models.NewRowBudget(0) || none.Limit() != 0 || none.Left() != math.MaxInt || none.Spend(1<<40) != nil || none.Check(1<<40) != nil || none.Passed() {
		t.Fatal("no budget limits something")
	}
	b := models.NewRowBudget(10)
	if b.Limit() != 11 || b.Spend(4) != nil || b.Left() != 6 || b.Limit() != 7 {
		t.Fatalf("after spending 4 of 10: left %d, limit %d", b.Left(), b.Limit())
	}
	if b.Check(6) != nil || b.Used() != 4 {
		t.Fatal("a statement that read what is left was refused, or spent")
	}
	if err := b.Check(7); !errors.Is(err, models.ErrRowBudget) || !b.Passed() || b.Left() != 0 || b.Limit() != 1 {
		t.Fatalf("a statement that read one row more than is left: %v, passed %v", err, b.Passed())
	}
	if !errors.Is(b.Spend(1), models.ErrRowBudget) {
		t.Fatal("a passed budget takes more rows")
	}
	c := models.NewRowBudget(10)
	if c.Spend(10) != nil || !errors.Is(c.Spend(1), models.ErrRowBudget) || c.Spend(0) != nil {
		t.Fatal("spending: 10 of 10 fits, the 11th does not, nothing is nothing")
	}
}

// The list reads behind the loaders ask for at most the rows left plus one,
// refuse when they get that many, spend nothing themselves (what is
// delivered is spent), and send no statement once the budget is passed.
func TestBatchReadsWithinRowBudget(t *testing.T) {
	e := setup(t)
	f := newBatchFixture(e) // 9 stacks with one label each, all targeted by one agent; 22 objects
	var stacks []uuid.UUID
	for _, g := range f.gens {
		stacks = append(stacks, f.stacks[g]...)
	}
	reads := map[string]func(*models.RowBudget) error{
		"StacksByGenerators": func(b *models.RowBudget) error {
			_, err := models.StacksByGenerators(e.ctx, e.db, admin, f.gens, nil, models.ListArgs{Budget: b})
			return err
		},
		"LabelsByStacks": func(b *models.RowBudget) error {
			_, err := models.LabelsByStacks(e.ctx, e.db, admin, stacks, b)
			return err
		},
		"TargetsByAgents": func(b *models.RowBudget) error {
			_, err := models.TargetsByAgents(e.ctx, e.db, admin, []uuid.UUID{f.agent}, b)
			return err
		},
		"DesiredStatesByAgents": func(b *models.RowBudget) error {
			_, err := models.DesiredStatesByAgents(e.ctx, e.db, admin, []uuid.UUID{f.agent}, b)
			return err
		},
	}
	for name, read := range reads {
		fits := models.NewRowBudget(9)
		if err := read(fits); err != nil || fits.Used() != 0 {
			t.Fatalf("%s: 9 rows in a budget of 9: %v, spent %d", name, err, fits.Used())
		}
		short := models.NewRowBudget(9)
		_ = short.Spend(1)
		if err := read(short); !errors.Is(err, models.ErrRowBudget) || !short.Passed() {
			t.Fatalf("%s: 9 rows with 8 left: %v", name, err)
		}
		var err error
		if n := e.statements(func() { err = read(short) }); n != 0 || !errors.Is(err, models.ErrRowBudget) {
			t.Fatalf("%s: %d statements, %v once the budget is passed", name, n, err)
		}
	}
	// A top-level list: 22 objects do not fit a budget of 5; first: 5 fits
	// one of 6 (the statement reads the look-ahead row that says there is
	// a next page, which must fit in what is left too).
	if _, err := models.ListDeploymentObjects(e.ctx, e.db, admin, nil, models.ListArgs{Budget: models.NewRowBudget(5)}); !errors.Is(err, models.ErrRowBudget) {
		t.Fatalf("22 objects in a budget of 5: %v", err)
	}
	if p, err := models.ListDeploymentObjects(e.ctx, e.db, admin, nil, models.ListArgs{First: ptr(5), Budget: models.NewRowBudget(6)}); err != nil || len(p.Nodes) != 5 || !p.HasNextPage {
		t.Fatalf("first: 5 in a budget of 6: %v", err)
	}
}
