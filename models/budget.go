package models

import (
	"math"
	"sync/atomic"
)

// RowBudget is the number of rows one response may hold (DESIGN §8: reads
// are budgeted by the rows they read, not by a static worst case). Every
// node of a connection, every entry of a list field (labels, annotations,
// targets, desired state) and every object of a single-object edge counts
// one, each time the response holds it: a stack's page read once but
// asked for under two aliases counts twice, so aliases cannot repeat a
// read past the budget.
//
// Two checks use it. The rows a response delivers are spent (Spend) by
// whoever delivers them, and every statement that reads rows for the
// response asks for at most the rows left plus one (Limit) and refuses to
// go on when it got that many (Check): it would pass the budget, and
// reading further is wasted work. Both answer ErrRowBudget; once the
// budget is passed, it stays passed, so the statements of the rest of the
// response are not even sent (Passed).
//
// A nil *RowBudget is no budget: every method accepts it. A RowBudget is
// safe for concurrent use (gqlgen resolves siblings concurrently).
type RowBudget struct {
	max  int64
	used atomic.Int64
}

// ErrRowBudget reports a read that would pass the response's row budget.
// The GraphQL edge turns it into an error naming the connection where the
// budget ran out.
var ErrRowBudget = &Error{Kind: KindRowBudget, Message: "this query reads more rows than its row budget allows"}

// NewRowBudget returns a budget of max rows; max <= 0 means no budget (nil).
func NewRowBudget(max int) *RowBudget {
	if max <= 0 {
		return nil
	}
	return &RowBudget{max: int64(max)}
}

// Max is the budget (0 without one).
func (b *RowBudget) Max() int {
	if b == nil {
		return 0
	}
	return int(b.max)
}

// Used is the number of rows spent so far (more than Max once passed).
func (b *RowBudget) Used() int {
	if b == nil {
		return 0
	}
	return int(b.used.Load())
}

// Left is the number of rows that may still be spent (math.MaxInt without
// a budget, 0 once it is passed).
func (b *RowBudget) Left() int {
	if b == nil {
		return math.MaxInt
	}
	return int(max(b.max-b.used.Load(), 0))
}

// Passed reports whether a read has already passed the budget.
func (b *RowBudget) Passed() bool {
	return b != nil && b.used.Load() > b.max
}

// Limit is the LIMIT for a statement that reads rows for the response: the
// rows left plus one, so that a statement that returns Limit rows shows
// that the budget would pass; 0 means no limit.
func (b *RowBudget) Limit() int {
	if b == nil {
		return 0
	}
	return b.Left() + 1
}

// Check returns ErrRowBudget, and passes the budget, when a statement read
// n rows and they do not fit in what is left (a statement run with Limit
// got all it asked for). It spends nothing: rows are spent when delivered.
func (b *RowBudget) Check(n int) error {
	if b == nil || n <= b.Left() {
		return nil
	}
	b.used.Add(b.max + 1)
	return ErrRowBudget
}

// Spend charges n rows delivered to the response; ErrRowBudget when they
// pass the budget.
func (b *RowBudget) Spend(n int) error {
	if b == nil || n == 0 {
		return nil
	}
	if b.used.Add(int64(n)) > b.max {
		return ErrRowBudget
	}
	return nil
}
