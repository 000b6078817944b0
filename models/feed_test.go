package models_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// feedWorld: generator g owns stacks s and gone (deleted: its marker is its
// only live object); other owns so. Agent act (ACTIVE) targets s, gone and
// so; idle (INACTIVE) targets s; lone (ACTIVE) targets nothing; dead was
// deleted.
type feedWorld struct {
	e                  *env
	g, other           models.Scope
	s, gone, so        uuid.UUID
	act, idle, lone    uuid.UUID
	dead               uuid.UUID
	o1, o2, o3, marker *models.DeploymentObject
	deletedObj         *models.DeploymentObject
}

func newFeedWorld(t *testing.T) *feedWorld {
	e := setup(t)
	w := &feedWorld{e: e}
	g, _, gs := e.generator("g")
	og, _, ogs := e.generator("other")
	w.g, w.other = gs, ogs
	w.s, w.gone, w.so = e.stack(g.ID, "s").ID, e.stack(g.ID, "gone").ID, e.stack(og.ID, "so").ID
	a, _ := e.agent("act", true)
	i, _ := e.agent("idle", false)
	l, _ := e.agent("lone", true)
	d, _ := e.agent("dead", true)
	w.act, w.idle, w.lone, w.dead = a.ID, i.ID, l.ID, d.ID
	for _, st := range []uuid.UUID{w.s, w.gone, w.so} {
		e.target(w.act, st)
	}
	e.target(w.idle, w.s)
	e.target(w.dead, w.s)
	w.o1 = e.object(w.s, "n: 1")
	w.deletedObj = e.object(w.s, "n: 2")
	must[*models.DeploymentObject](t)(models.DeleteDeploymentObject(e.ctx, e.db, admin, w.deletedObj.ID))
	w.o2 = e.object(w.s, "n: 3")
	w.o3 = e.object(w.so, "n: 4")
	e.object(w.gone, "n: 5")
	must[*models.Stack](t)(models.DeleteStack(e.ctx, e.db, admin, w.gone, false))
	latest := must[map[uuid.UUID]*models.DeploymentObject](t)(models.LatestDeploymentObjectsByStacks(e.ctx, e.db, admin, []uuid.UUID{w.gone}))
	w.marker = latest[w.gone]
	if w.marker == nil || !w.marker.IsDeletionMarker {
		t.Fatalf("no deletion marker: %+v", w.marker)
	}
	must[*models.Agent](t)(models.DeleteAgent(e.ctx, e.db, admin, w.dead, false))
	return w
}

// roles are the scopes every agreement test runs through.
func (w *feedWorld) roles() map[string]models.Scope {
	return map[string]models.Scope{
		"admin": admin, "owner": w.g, "other generator": w.other,
		"active agent": models.AgentScope(w.act), "inactive agent": models.AgentScope(w.idle),
		"agent without targets": models.AgentScope(w.lone),
	}
}

func TestFeedAgent(t *testing.T) {
	w := newFeedWorld(t)
	e := w.e
	cases := []struct {
		name  string
		scope models.Scope
		given uuid.UUID
		want  uuid.UUID
		kind  models.Kind
	}{
		{"agent itself", models.AgentScope(w.act), uuid.Nil, w.act, ""},
		{"agent naming itself", models.AgentScope(w.act), w.act, w.act, ""},
		{"agent naming another", models.AgentScope(w.act), w.idle, uuid.Nil, models.KindNotFound},
		{"deleted agent itself", models.AgentScope(w.dead), uuid.Nil, uuid.Nil, models.KindUnauthenticated},
		{"admin naming an agent", admin, w.idle, w.idle, ""},
		{"admin naming none", admin, uuid.Nil, uuid.Nil, models.KindInvalid},
		{"admin naming a deleted agent", admin, w.dead, uuid.Nil, models.KindNotFound},
		{"admin naming an unknown agent", admin, uuid.New(), uuid.Nil, models.KindNotFound},
		{"generator", w.g, w.act, uuid.Nil, models.KindForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := models.FeedAgent(e.ctx, e.db, c.scope, c.given)
			if c.kind != "" {
				wantKind(t, err, c.kind)
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %s, %v; want %s", got, err, c.want)
			}
		})
	}
}

func TestFeedAgentStates(t *testing.T) {
	w := newFeedWorld(t)
	e := w.e
	ids := []uuid.UUID{w.act, w.idle, w.lone, w.dead, uuid.New()}
	read := func() map[uuid.UUID]*models.FeedAgentState {
		return inOneStatement(e, "FeedAgentStates", func() (map[uuid.UUID]*models.FeedAgentState, error) {
			return models.FeedAgentStates(e.ctx, e.db, ids)
		})
	}
	got := read()
	if len(got) != 3 || got[w.dead] != nil {
		t.Fatalf("read %d agents (dead: %v), want act, idle and lone", len(got), got[w.dead])
	}
	carried := func(a uuid.UUID) []uuid.UUID {
		var out []uuid.UUID
		for _, t := range got[a].Targets {
			if t.Carried {
				out = append(out, t.StackID)
			}
		}
		return out
	}
	if n := len(got[w.act].Targets); n != 3 || len(carried(w.act)) != 3 {
		t.Fatalf("act: %d targets, %d carried; want 3, 3 (a deleted stack's too, for its marker)", n, len(carried(w.act)))
	}
	if n := len(got[w.idle].Targets); n != 1 || len(carried(w.idle)) != 0 {
		t.Fatalf("idle: %d targets, %d carried; want 1, 0", n, len(carried(w.idle)))
	}
	if got[w.lone].PakHash == "" || len(got[w.lone].Targets) != 0 {
		t.Fatalf("lone: %+v", got[w.lone])
	}

	// Marks and acknowledgements.
	noErr(t, models.MarkTargetsAnnounced(e.ctx, e.db, w.act, []uuid.UUID{w.s, w.so}))
	noErr(t, models.MarkTargetsHanded(e.ctx, e.db, w.act, []uuid.UUID{w.so}, w.o3.SequenceID))
	noErr(t, models.MarkTargetsAnnounced(e.ctx, e.db, w.act, []uuid.UUID{w.so})) // keeps its mark
	must[*models.AgentEvent](t)(models.ReportAgentEvent(e.ctx, e.db, models.AgentScope(w.act),
		models.ReportAgentEventInput{DeploymentObjectID: w.o2.ID, EventType: "DEPLOY", Status: "SUCCESS"}))
	got = read()
	byStack := map[uuid.UUID]models.FeedTarget{}
	for _, tg := range got[w.act].Targets {
		byStack[tg.StackID] = tg
	}
	s, so, gone := byStack[w.s], byStack[w.so], byStack[w.gone]
	if !s.Announced || s.AnnouncedSeq == nil || *s.AnnouncedSeq != -1 || !s.Acked {
		t.Fatalf("s: %+v (want announced in order, acknowledged)", s)
	}
	if !so.Announced || so.AnnouncedSeq == nil || *so.AnnouncedSeq != w.o3.SequenceID || so.Acked {
		t.Fatalf("so: %+v (want handed at %d, not acknowledged)", so, w.o3.SequenceID)
	}
	if gone.Announced || gone.Acked {
		t.Fatalf("gone: %+v", gone)
	}
}

func TestLatestObjectsUpToAndObjectsAbove(t *testing.T) {
	w := newFeedWorld(t)
	e := w.e
	latest := must[map[uuid.UUID]*models.DeploymentObject](t)(models.LatestObjectsUpTo(e.ctx, e.db, []uuid.UUID{w.s, w.gone, w.so}, w.o3.SequenceID))
	if latest[w.s].ID != w.o2.ID || latest[w.so].ID != w.o3.ID || latest[w.gone] != nil {
		t.Fatalf("up to %d: %v", w.o3.SequenceID, latest)
	}
	latest = must[map[uuid.UUID]*models.DeploymentObject](t)(models.LatestObjectsUpTo(e.ctx, e.db, []uuid.UUID{w.s, w.gone}, w.marker.SequenceID))
	if m := latest[w.gone]; m == nil || m.ID != w.marker.ID || m.Stack == nil || m.Stack.DeletedAt == nil {
		t.Fatalf("the marker, with its deleted stack: %+v", m)
	}
	if latest[w.s].Stack == nil || latest[w.s].Stack.ID != w.s {
		t.Fatalf("no stack attached: %+v", latest[w.s])
	}

	all := must[[]*models.DeploymentObject](t)(models.ObjectsAbove(e.ctx, e.db, 0, 100))
	if len(all) != 6 || all[1].DeletedAt == nil || all[1].ID != w.deletedObj.ID {
		t.Fatalf("ObjectsAbove(0): %d objects, the second %+v; want 6 with the soft-deleted one", len(all), all[1])
	}
	page := must[[]*models.DeploymentObject](t)(models.ObjectsAbove(e.ctx, e.db, w.o1.SequenceID, 2))
	if len(page) != 2 || page[0].ID != w.deletedObj.ID || page[1].ID != w.o2.ID || page[1].Stack == nil {
		t.Fatalf("ObjectsAbove(o1, 2): %v", seqs(page))
	}
	if max := must[int64](t)(models.MaxSequence(e.ctx, e.db)); max != w.marker.SequenceID {
		t.Fatalf("MaxSequence = %d, want %d", max, w.marker.SequenceID)
	}
	if ch := must[string](t)(models.NotifyChannel(e.ctx, e.db)); ch != "brokkr_public" {
		t.Fatalf("NotifyChannel = %q", ch)
	}
}

// FeedObjects is what the agent's own deploymentObjects query shows, within
// the stacks and range asked.
func TestFeedObjects(t *testing.T) {
	w := newFeedWorld(t)
	e := w.e
	all := []uuid.UUID{w.s, w.gone, w.so}
	for name, c := range map[string]struct {
		agent    uuid.UUID
		stacks   []uuid.UUID
		from, to int64
		limit    int
		want     []*models.DeploymentObject
	}{
		"everything":         {w.act, all, 0, w.marker.SequenceID, 100, []*models.DeploymentObject{w.o1, w.o2, w.o3, w.marker}},
		"a range":            {w.act, all, w.o1.SequenceID, w.o3.SequenceID, 100, []*models.DeploymentObject{w.o2, w.o3}},
		"a page":             {w.act, all, 0, w.marker.SequenceID, 2, []*models.DeploymentObject{w.o1, w.o2}},
		"the stacks asked":   {w.act, []uuid.UUID{w.so}, 0, w.marker.SequenceID, 100, []*models.DeploymentObject{w.o3}},
		"inactive":           {w.idle, all, 0, w.marker.SequenceID, 100, nil},
		"not targeted":       {w.lone, all, 0, w.marker.SequenceID, 100, nil},
		"no stacks":          {w.act, nil, 0, w.marker.SequenceID, 100, nil},
		"deleted is deleted": {w.dead, all, 0, w.marker.SequenceID, 100, nil},
	} {
		got := must[[]*models.DeploymentObject](t)(models.FeedObjects(e.ctx, e.db, c.agent, c.stacks, c.from, c.to, c.limit))
		if fmt.Sprint(seqs(got)) != fmt.Sprint(seqs(c.want)) {
			t.Errorf("%s: got %v, want %v", name, seqs(got), seqs(c.want))
		}
		for _, o := range got {
			if o.Stack == nil || o.Stack.ID != o.StackID {
				t.Errorf("%s: object %d without its stack", name, o.SequenceID)
			}
		}
	}
}

// A stack view shows, for every role, exactly what stack(id) {
// deploymentObjects } shows (nothing when the stack is not visible), in one
// statement for all views.
func TestStackViewsAgreeWithTheQuery(t *testing.T) {
	w := newFeedWorld(t)
	e := w.e
	var views []models.StackView
	for _, sc := range w.roles() {
		for _, st := range []uuid.UUID{w.s, w.gone, w.so, uuid.New()} {
			views = append(views, models.StackView{Scope: sc, StackID: st})
		}
	}
	top := w.marker.SequenceID
	sees := inOneStatement(e, "StackViewsSee", func() ([]map[uuid.UUID]bool, error) {
		return models.StackViewsSee(e.ctx, e.db, views, 0, top)
	})
	for i, v := range views {
		want := stackQuery(t, e, v)
		replay := must[[]*models.DeploymentObject](t)(models.StackViewObjects(e.ctx, e.db, v, 0, top, 100))
		var seen []uuid.UUID
		for id := range sees[i] {
			seen = append(seen, id)
		}
		if !sameIDs(seen, want) || !sameIDs(objIDs(replay), want) {
			t.Errorf("%+v: StackViewsSee %v, StackViewObjects %v; the query shows %v", v, seen, objIDs(replay), want)
		}
	}
	// Checks: the owner and admins see the live stack; an inactive agent
	// does not; only admins follow a deleted stack.
	for _, c := range []struct {
		v  models.StackView
		ok bool
	}{
		{models.StackView{Scope: w.g, StackID: w.s}, true},
		{models.StackView{Scope: w.other, StackID: w.s}, false},
		{models.StackView{Scope: models.AgentScope(w.act), StackID: w.s}, true},
		{models.StackView{Scope: models.AgentScope(w.idle), StackID: w.s}, false},
		{models.StackView{Scope: admin, StackID: w.gone}, true},
		{models.StackView{Scope: w.g, StackID: w.gone}, false},
		{models.StackView{Scope: models.AgentScope(w.act), StackID: w.gone}, false},
	} {
		if err := c.v.Check(e.ctx, e.db); (err == nil) != c.ok {
			t.Errorf("Check %+v = %v, want ok %v", c.v, err, c.ok)
		}
	}
}

// stackQuery is what stack(id) { deploymentObjects } shows the view's scope
// (stack(id, includeDeleted: true) for admins): nil when the stack is not
// visible.
func stackQuery(t *testing.T, e *env, v models.StackView) []uuid.UUID {
	t.Helper()
	if _, err := models.GetStack(e.ctx, e.db, v.Scope, v.StackID, v.Scope.IsAdmin()); err != nil {
		wantKind(t, err, models.KindNotFound)
		return nil
	}
	pages := must[map[uuid.UUID]*models.Page[models.DeploymentObject]](t)(models.DeploymentObjectsByStacks(e.ctx, e.db, v.Scope, []uuid.UUID{v.StackID}, nil, models.ListArgs{First: ptr(500)}))
	return objIDs(pages[v.StackID].Nodes)
}

// An event view shows, for every role and filter, exactly what the
// agentEvents query shows; in particular an agent's event about the marker
// of a deleted stack is not the owner's (the query hides it: the stack is
// not live), which the first feed showed anyway.
func TestAgentEventViewsAgreeWithTheQuery(t *testing.T) {
	w := newFeedWorld(t)
	e := w.e
	as := models.AgentScope(w.act)
	report := func(d *models.DeploymentObject, status string) uuid.UUID {
		return must[*models.AgentEvent](t)(models.ReportAgentEvent(e.ctx, e.db, as,
			models.ReportAgentEventInput{DeploymentObjectID: d.ID, EventType: "DEPLOY", Status: status})).ID
	}
	onMarker := report(w.marker, "SUCCESS")
	onS := report(w.o2, "SUCCESS")
	onSo := report(w.o3, "FAILURE")
	evs := []uuid.UUID{onMarker, onS, onSo}
	filters := []models.AgentEventFilter{{}, {Status: ptr("SUCCESS")}, {StackID: &w.gone}, {AgentID: &w.idle}}
	var views []models.EventView
	for _, sc := range w.roles() {
		for _, f := range filters {
			views = append(views, models.EventView{Scope: sc, Filter: f})
		}
	}
	sees := inOneStatement(e, "AgentEventViewsSee", func() ([]map[uuid.UUID]bool, error) {
		return models.AgentEventViewsSee(e.ctx, e.db, views, evs)
	})
	for i, v := range views {
		page := must[*models.Page[models.AgentEvent]](t)(models.ListAgentEvents(e.ctx, e.db, v.Scope, &v.Filter, models.ListArgs{First: ptr(500)}))
		var seen []uuid.UUID
		for id := range sees[i] {
			seen = append(seen, id)
		}
		if !sameIDs(seen, evIDs(page.Nodes)) {
			t.Errorf("%+v: view shows %v, the query %v", v, seen, evIDs(page.Nodes))
		}
	}
	owner := must[[]map[uuid.UUID]bool](t)(models.AgentEventViewsSee(e.ctx, e.db, []models.EventView{{Scope: w.g}}, evs))[0]
	if owner[onMarker] || !owner[onS] || owner[onSo] {
		t.Fatalf("the owner's view: %v (marker %s, s %s, so %s)", owner, onMarker, onS, onSo)
	}
	if a, b := (models.EventView{Scope: w.g}).Key(), (models.EventView{Scope: w.g, Filter: models.AgentEventFilter{Status: ptr("X")}}).Key(); a == b {
		t.Fatal("views with other filters share a key")
	}
	if a, b := (models.EventView{Scope: w.g, Filter: models.AgentEventFilter{Status: ptr("X")}}).Key(), (models.EventView{Scope: w.g, Filter: models.AgentEventFilter{Status: ptr("X")}}).Key(); a != b {
		t.Fatal("equal views have different keys")
	}
}

func TestPrincipalKeys(t *testing.T) {
	w := newFeedWorld(t)
	e := w.e
	must[*models.Generator](t)(models.UpdateGenerator(e.ctx, e.db, admin, models.UpdateGeneratorInput{ID: w.other.GeneratorID, IsActive: ptr(false)}))
	keys := inOneStatement(e, "PrincipalKeys", func() (map[uuid.UUID]string, error) {
		return models.PrincipalKeys(e.ctx, e.db, []uuid.UUID{w.act, w.idle, w.dead, w.g.GeneratorID, w.other.GeneratorID, uuid.New()})
	})
	if len(keys) != 3 || keys[w.act] == "" || keys[w.idle] == "" || keys[w.g.GeneratorID] == "" {
		t.Fatalf("keys: %v (want act, idle and g: a deleted agent's and a deactivated generator's key do not authenticate)", keys)
	}
	id, hash, err := models.PrincipalKey(e.ctx, e.db, models.AgentScope(w.act))
	if err != nil || id != w.act || hash != keys[w.act] {
		t.Fatalf("PrincipalKey(act) = %s %q %v", id, hash, err)
	}
	if id, hash, err := models.PrincipalKey(e.ctx, e.db, admin); err != nil || id != uuid.Nil || hash != "" {
		t.Fatalf("PrincipalKey(admin) = %s %q %v", id, hash, err)
	}
	_, _, err = models.PrincipalKey(e.ctx, e.db, w.other)
	wantKind(t, err, models.KindUnauthenticated)
	_, _, err = models.PrincipalKey(e.ctx, e.db, models.AgentScope(w.dead))
	wantKind(t, err, models.KindUnauthenticated)
	_, _, err = models.PrincipalKey(e.ctx, e.db, models.Scope{Role: "NOBODY"})
	wantKind(t, err, models.KindForbidden)
}

func TestAgentEventsSinceAndTheOldestTransaction(t *testing.T) {
	w := newFeedWorld(t)
	e := w.e
	as := models.AgentScope(w.act)
	var want []uuid.UUID
	for _, d := range []*models.DeploymentObject{w.o1, w.o2, w.o3} {
		want = append(want, must[*models.AgentEvent](t)(models.ReportAgentEvent(e.ctx, e.db, as,
			models.ReportAgentEventInput{DeploymentObjectID: d.ID, EventType: "DEPLOY", Status: "SUCCESS"})).ID)
	}
	since := time.Now().Add(-time.Hour)
	got := must[[]*models.AgentEvent](t)(models.AgentEventsSince(e.ctx, e.db, since, 2))
	if len(got) != 2 || got[0].ID != want[0] || got[1].ID != want[1] {
		t.Fatalf("AgentEventsSince, first 2: %v, want %v", evIDs(got), want[:2])
	}
	stamps := must[[]models.EventStamp](t)(models.AgentEventStampsSince(e.ctx, e.db, since))
	if len(stamps) != 3 {
		t.Fatalf("%d stamps, want 3", len(stamps))
	}
	if n := len(must[[]*models.AgentEvent](t)(models.AgentEventsSince(e.ctx, e.db, time.Now().Add(time.Hour), 10))); n != 0 {
		t.Fatalf("%d events from the future", n)
	}

	tx, err := e.db.BeginTx(e.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var start time.Time
	if err := tx.NewRaw("SELECT now()").Scan(e.ctx, &start); err != nil {
		t.Fatal(err)
	}
	now, oldest, err := models.OldestRunningTransaction(context.Background(), e.db)
	if err != nil || oldest == nil || oldest.After(start) || now.Before(start) {
		t.Fatalf("now %v, oldest %v, err %v; a transaction started at %v", now, oldest, err, start)
	}
}

func seqs(objs []*models.DeploymentObject) []int64 {
	out := make([]int64, len(objs))
	for i, o := range objs {
		out[i] = o.SequenceID
	}
	return out
}

func objIDs(objs []*models.DeploymentObject) []uuid.UUID {
	var out []uuid.UUID
	for _, o := range objs {
		out = append(out, o.ID)
	}
	return out
}

func evIDs(evs []*models.AgentEvent) []uuid.UUID {
	var out []uuid.UUID
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sameIDs(a, b []uuid.UUID) bool {
	key := func(ids []uuid.UUID) []string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = id.String()
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}
