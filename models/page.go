package models

// ListArgs are the pagination arguments of every list (Relay connections).
type ListArgs struct {
	// First is the page size: nil means DefaultFirst; at most MaxFirst;
	// below 1 is Invalid("first").
	First *int
	// After is an opaque cursor from a previous page (Invalid("after") when
	// it is not one of this list's cursors).
	After *string
	// IncludeDeleted lists soft-deleted rows too; admins only (Forbidden otherwise).
	IncludeDeleted bool
	// Budget, when set, is the response's row budget: the statement asks
	// for at most the rows left plus one, and answers ErrRowBudget when it
	// got that many (the rows are spent by whoever delivers the page).
	Budget *RowBudget
}

const (
	// DefaultFirst is the page size when First is nil.
	DefaultFirst = 50
	// MaxFirst is the largest page size.
	MaxFirst = 500
)

// Page is one page of a list. Cursors[i] is the cursor of Nodes[i].
// TotalCount counts every row of the list (within scope and filter),
// regardless of After.
type Page[T any] struct {
	Nodes       []*T
	Cursors     []string
	HasNextPage bool
	EndCursor   *string
	TotalCount  int
}
