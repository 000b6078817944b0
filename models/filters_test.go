package models_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/models"
)

// lastSelect is a bun query hook that keeps the text of the last SELECT.
type lastSelect struct {
	mu  sync.Mutex
	sql string
}

func (h *lastSelect) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }
func (h *lastSelect) AfterQuery(_ context.Context, ev *bun.QueryEvent) {
	if strings.HasPrefix(ev.Query, "SELECT") {
		h.mu.Lock()
		h.sql = ev.Query
		h.mu.Unlock()
	}
}

// seedLabelled makes n stacks of one generator, stack i with labels
// l<i%vocab>, l<(i+1)%vocab>, … (perLabel of them) and annotations
// k<j> = v<(i+j)%vocab> for j < perLabel, and analyzes the tables.
func seedLabelled(t *testing.T, e *env, n, vocab, per int) {
	t.Helper()
	g, _, _ := e.generator("seed")
	for _, q := range []string{
		`INSERT INTO stacks (name, generator_id) SELECT 's' || i, ? FROM generate_series(1, ?) AS i`,
		`INSERT INTO stack_labels (stack_id, label)
			SELECT s.id, 'l' || ((substr(s.name, 2)::int + j) % ?) FROM stacks s, generate_series(0, ? - 1) AS j`,
		`INSERT INTO stack_annotations (stack_id, key, value)
			SELECT s.id, 'k' || j, 'v' || ((substr(s.name, 2)::int + j) % ?) FROM stacks s, generate_series(0, ? - 1) AS j`,
	} {
		var args []any
		switch {
		case strings.Contains(q, "INTO stacks"):
			args = []any{g.ID, n}
		default:
			args = []any{vocab, per}
		}
		if _, err := e.db.ExecContext(e.ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.db.ExecContext(e.ctx, "ANALYZE stacks, stack_labels, stack_annotations"); err != nil {
		t.Fatal(err)
	}
}

// planNode is the part of EXPLAIN (FORMAT JSON) the test reads.
type planNode struct {
	NodeType  string     `json:"Node Type"`
	Relation  string     `json:"Relation Name"`
	IndexName string     `json:"Index Name"`
	Plans     []planNode `json:"Plans"`
}

func (p planNode) walk(f func(planNode)) {
	f(p)
	for _, c := range p.Plans {
		c.walk(f)
	}
}

// explain returns the plan of sql.
func explain(t *testing.T, e *env, sql string) planNode {
	t.Helper()
	var out string
	if err := e.db.QueryRowContext(e.ctx, "EXPLAIN (FORMAT JSON) "+sql).Scan(&out); err != nil {
		t.Fatal(err)
	}
	var plans []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(out), &plans); err != nil || len(plans) != 1 {
		t.Fatalf("EXPLAIN output %q: %v", out, err)
	}
	return plans[0].Plan
}

// A label or annotation filter costs one pass over the label (annotation)
// index, whatever the number of values (issue 8, item 2): its plan reads
// the label table once, through an index, where it used to run a subplan
// per value (200 labels took 17 s).
func TestLabelFiltersReadTheIndexOnce(t *testing.T) {
	e := setup(t)
	hook := &lastSelect{}
	e.db.AddQueryHook(hook)
	seedLabelled(t, e, 3000, 400, 8)

	labels := make([]string, models.MaxLabels)
	anns := make([]*models.AnnotationInput, models.MaxAnnotations)
	for i := range labels {
		labels[i] = fmt.Sprintf("l%d", i*3)
		anns[i] = &models.AnnotationInput{Key: fmt.Sprintf("k%d", i), Value: fmt.Sprintf("v%d", i*3)}
	}
	for _, c := range []struct {
		name, table string
		filter      models.StackFilter
	}{
		{"labels", "stack_labels", models.StackFilter{Labels: labels}},
		{"annotations", "stack_annotations", models.StackFilter{Annotations: anns}},
		{"few labels", "stack_labels", models.StackFilter{Labels: []string{"l1", "l2"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			must[*models.Page[models.Stack]](t)(models.ListStacks(e.ctx, e.db, admin, &c.filter, models.ListArgs{}))
			hook.mu.Lock()
			sql := hook.sql
			hook.mu.Unlock()
			scans, indexed := 0, 0
			explain(t, e, sql).walk(func(p planNode) {
				if p.Relation == c.table {
					scans++
					if strings.Contains(p.NodeType, "Index") {
						indexed++
					}
				}
				if p.NodeType == "Bitmap Index Scan" && strings.HasPrefix(p.IndexName, c.table) {
					indexed++
				}
			})
			if scans != 1 || indexed == 0 {
				t.Fatalf("%s is read %d times (%d through an index), want once through an index:\n%s", c.table, scans, indexed, sql)
			}
		})
	}
}
