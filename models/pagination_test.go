package models_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// walk pages through a list with page size n and returns every node's id
// in order, checking the page invariants on the way.
func walk[T any](t *testing.T, n, total int, list func(after *string) *models.Page[T], id func(*T) uuid.UUID) []uuid.UUID {
	t.Helper()
	var out []uuid.UUID
	var after *string
	for pages := 0; ; pages++ {
		if pages > total+1 {
			t.Fatal("pagination does not terminate")
		}
		p := list(after)
		if p.TotalCount != total {
			t.Fatalf("page %d: totalCount %d, want %d", pages, p.TotalCount, total)
		}
		if len(p.Nodes) != len(p.Cursors) || len(p.Nodes) > n {
			t.Fatalf("page %d: %d nodes, %d cursors", pages, len(p.Nodes), len(p.Cursors))
		}
		// Cursors are stable: the same request answers the same page.
		again := list(after)
		for i := range p.Nodes {
			if id(p.Nodes[i]) != id(again.Nodes[i]) || p.Cursors[i] != again.Cursors[i] {
				t.Fatal("the same page came back different")
			}
			out = append(out, id(p.Nodes[i]))
		}
		if len(p.Nodes) > 0 && *p.EndCursor != p.Cursors[len(p.Cursors)-1] {
			t.Fatal("endCursor is not the last cursor")
		}
		if !p.HasNextPage {
			if len(out) != total {
				t.Fatalf("walk ended after %d of %d rows", len(out), total)
			}
			return out
		}
		if len(p.Nodes) != n {
			t.Fatalf("page %d is short (%d) but hasNextPage", pages, len(p.Nodes))
		}
		after = p.EndCursor
	}
}

func exactlyOnce(t *testing.T, got []uuid.UUID, want map[uuid.UUID]bool) {
	t.Helper()
	seen := map[uuid.UUID]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("%s returned twice", id)
		}
		if !want[id] {
			t.Fatalf("%s was not expected", id)
		}
		seen[id] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("got %d distinct rows, want %d", len(seen), len(want))
	}
}

func TestPaginationWalks(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	const N = 120
	// Stacks in one transaction share created_at: the id breaks the ties.
	var stackIDs []uuid.UUID
	if err := e.db.NewRaw(`INSERT INTO stacks (generator_id, name)
		SELECT ?, 'stack-' || i FROM generate_series(1, ?) AS i RETURNING id`, g.ID, N-20).Scan(e.ctx, &stackIDs); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		stackIDs = append(stackIDs, e.stack(g.ID, fmt.Sprintf("late-%d", i)).ID)
	}
	want := map[uuid.UUID]bool{}
	for _, id := range stackIDs {
		want[id] = true
	}
	for _, n := range []int{1, 7, 50, 120, 500} {
		got := walk(t, n, N, func(after *string) *models.Page[models.Stack] {
			return must[*models.Page[models.Stack]](t)(models.ListStacks(e.ctx, e.db, gs, nil, models.ListArgs{First: &n, After: after}))
		}, func(s *models.Stack) uuid.UUID { return s.ID })
		exactlyOnce(t, got, want)
	}

	// Deployment objects: sequence descending.
	s := e.stack(g.ID, "objects")
	var objIDs []uuid.UUID
	if err := e.db.NewRaw(`INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
		SELECT ?, 'i: ' || i, encode(sha256(convert_to('i: ' || i, 'UTF8')), 'hex') FROM generate_series(1, ?) AS i
		RETURNING id`, s.ID, N).Scan(e.ctx, &objIDs); err != nil {
		t.Fatal(err)
	}
	var last int64 = 1 << 62
	got := walk(t, 13, N, func(after *string) *models.Page[models.DeploymentObject] {
		p := must[*models.Page[models.DeploymentObject]](t)(models.ListDeploymentObjects(e.ctx, e.db, gs, &models.DeploymentObjectFilter{StackID: &s.ID}, models.ListArgs{First: ptr(13), After: after}))
		return p
	}, func(d *models.DeploymentObject) uuid.UUID { return d.ID })
	want = map[uuid.UUID]bool{}
	for _, id := range objIDs {
		want[id] = true
	}
	exactlyOnce(t, got, want)
	all := must[*models.Page[models.DeploymentObject]](t)(models.ListDeploymentObjects(e.ctx, e.db, gs, &models.DeploymentObjectFilter{StackID: &s.ID}, models.ListArgs{First: ptr(500)}))
	for _, d := range all.Nodes {
		if d.SequenceID >= last {
			t.Fatal("objects are not in sequence DESC")
		}
		last = d.SequenceID
	}

	// Events: newest first, ties (one transaction) broken by id.
	a, _ := e.agent("a", true)
	var evIDs []uuid.UUID
	if err := e.db.NewRaw(`INSERT INTO agent_events (agent_id, deployment_object_id, event_type, status, created_at)
		SELECT ?, ?, 'DEPLOY', 'OK', now() - (i % 10) * interval '1 second' FROM generate_series(1, ?) AS i
		RETURNING id`, a.ID, objIDs[0], N).Scan(e.ctx, &evIDs); err != nil {
		t.Fatal(err)
	}
	got = walk(t, 11, N, func(after *string) *models.Page[models.AgentEvent] {
		return must[*models.Page[models.AgentEvent]](t)(models.ListAgentEvents(e.ctx, e.db, admin, nil, models.ListArgs{First: ptr(11), After: after}))
	}, func(ev *models.AgentEvent) uuid.UUID { return ev.ID })
	want = map[uuid.UUID]bool{}
	for _, id := range evIDs {
		want[id] = true
	}
	exactlyOnce(t, got, want)
	evs := must[*models.Page[models.AgentEvent]](t)(models.ListAgentEvents(e.ctx, e.db, admin, nil, models.ListArgs{First: ptr(500)}))
	for i := 1; i < len(evs.Nodes); i++ {
		p, c := evs.Nodes[i-1], evs.Nodes[i]
		if c.CreatedAt.After(p.CreatedAt) || (c.CreatedAt.Equal(p.CreatedAt) && c.ID.String() <= p.ID.String()) {
			t.Fatalf("events out of order at %d", i)
		}
	}
}

func TestPaginationArgs(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	for i := 0; i < 60; i++ {
		e.stack(g.ID, fmt.Sprintf("s%02d", i))
	}
	p := must[*models.Page[models.Stack]](t)(models.ListStacks(e.ctx, e.db, gs, nil, models.ListArgs{}))
	if len(p.Nodes) != models.DefaultFirst || !p.HasNextPage || p.TotalCount != 60 {
		t.Fatalf("default page: %d nodes", len(p.Nodes))
	}
	for _, bad := range []int{0, -1, models.MaxFirst + 1} {
		_, err := models.ListStacks(e.ctx, e.db, gs, nil, models.ListArgs{First: ptr(bad)})
		wantField(t, err, "first")
	}
	d := e.object(p.Nodes[0].ID, "a: 1")
	objs := must[*models.Page[models.DeploymentObject]](t)(models.ListDeploymentObjects(e.ctx, e.db, admin, nil, models.ListArgs{}))
	if objs.Nodes[0].ID != d.ID {
		t.Fatal("object list")
	}
	for _, bad := range []string{"", "garbage!", "Zm9v", objs.Cursors[0]} { // the last: an object cursor on a stack list
		_, err := models.ListStacks(e.ctx, e.db, gs, nil, models.ListArgs{After: ptr(bad)})
		wantField(t, err, "after")
	}
	// A cursor past the end: no nodes, but the total is still known.
	last := must[*models.Page[models.Stack]](t)(models.ListStacks(e.ctx, e.db, gs, nil, models.ListArgs{First: ptr(500)}))
	end := must[*models.Page[models.Stack]](t)(models.ListStacks(e.ctx, e.db, gs, nil, models.ListArgs{After: last.EndCursor}))
	if len(end.Nodes) != 0 || end.HasNextPage || end.TotalCount != 60 || end.EndCursor != nil {
		t.Fatalf("past the end: %d nodes, total %d", len(end.Nodes), end.TotalCount)
	}
}
