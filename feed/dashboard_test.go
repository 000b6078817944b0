package feed_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/models"
)

func TestStackDeploymentObjects(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{})
	g, other := f.generator(), f.generator()
	s := f.stack(g)
	first := f.object(s)
	second := f.object(s)
	genScope := models.Scope{Role: models.RoleGenerator, GeneratorID: g}

	for _, sc := range []models.Scope{
		{Role: models.RoleGenerator, GeneratorID: other},
		agentScope(f.agent(true)), // does not target it
	} {
		if _, _, err := h.StackDeploymentObjects(bg, sc, s, nil); models.ErrorKind(err) != models.KindNotFound {
			t.Fatalf("scope %+v: %v, want NOT_FOUND", sc, err)
		}
	}
	if _, _, err := h.StackDeploymentObjects(bg, admin, uuid.New(), nil); models.ErrorKind(err) != models.KindNotFound {
		t.Fatalf("unknown stack: %v, want NOT_FOUND", err)
	}

	// With after: replay, then live. Without: live only.
	replay, _, err := h.StackDeploymentObjects(bg, genScope, s, ptr(first))
	if err != nil {
		t.Fatal(err)
	}
	live, _, err := h.StackDeploymentObjects(bg, admin, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, recvN(t, replay, 1, wait), []int64{second})
	time.Sleep(100 * time.Millisecond)
	third := f.object(s)
	f.object(f.stack(g)) // another stack: not delivered
	h.Published(bg)
	equal(t, recvN(t, replay, 1, wait), []int64{third})
	equal(t, recvN(t, live, 1, wait), []int64{third})
	quiet(t, live, 200*time.Millisecond)
}

func TestAgentEvents(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{PollInterval: 50 * time.Millisecond})
	g1, g2 := f.generator(), f.generator()
	s1, s2 := f.stack(g1), f.stack(g2)
	a1, a2 := f.agent(true), f.agent(true)
	var d1, d2 uuid.UUID
	f.scan(&d1, "SELECT id FROM deployment_objects WHERE sequence_id = ?", f.object(s1))
	f.scan(&d2, "SELECT id FROM deployment_objects WHERE sequence_id = ?", f.object(s2))
	event := func(agent, obj uuid.UUID, status string) uuid.UUID {
		var id uuid.UUID
		f.scan(&id, "INSERT INTO agent_events (agent_id, deployment_object_id, event_type, status) VALUES (?, ?, 'DEPLOY', ?) RETURNING id", agent, obj, status)
		return id
	}
	event(a1, d1, "SUCCESS") // before anyone subscribes: not delivered

	subs := map[string]<-chan *models.AgentEvent{}
	for name, sc := range map[string]models.Scope{
		"admin": admin,
		"g1":    {Role: models.RoleGenerator, GeneratorID: g1},
		"a2":    agentScope(a2),
	} {
		ch, _, err := h.AgentEvents(bg, sc, nil)
		if err != nil {
			t.Fatal(err)
		}
		subs[name] = ch
	}
	failures, _, err := h.AgentEvents(bg, admin, &models.AgentEventFilter{Status: ptr("FAILURE")})
	if err != nil {
		t.Fatal(err)
	}
	e1 := event(a1, d1, "SUCCESS")
	e2 := event(a2, d2, "FAILURE")
	h.Published(bg)

	want := map[string][]uuid.UUID{"admin": {e1, e2}, "g1": {e1}, "a2": {e2}}
	for name, ids := range want {
		for _, id := range ids {
			select {
			case e := <-subs[name]:
				if e.ID != id {
					t.Fatalf("%s got event %s, want %s", name, e.ID, id)
				}
			case <-time.After(wait):
				t.Fatalf("%s: no event", name)
			}
		}
	}
	select {
	case e := <-failures:
		if e.ID != e2 || e.Status != "FAILURE" {
			t.Fatalf("filtered: got %+v", e)
		}
	case <-time.After(wait):
		t.Fatal("filtered: no event")
	}
	// Nothing delivered twice although the lookback rereads them.
	time.Sleep(300 * time.Millisecond)
	for name, ch := range subs {
		select {
		case e := <-ch:
			t.Fatalf("%s: unexpected event %+v", name, e)
		default:
		}
	}
}

// Dashboard subscriptions end when their generator's or agent's key is
// rotated, or the generator is deactivated; others keep running.
func TestDashboardSubscriptionsEndWithTheKey(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	revoked := make(chan models.Scope, 8)
	h, _ := startHub(t, db, feed.Options{OnRevoke: func(s models.Scope) { revoked <- s }})
	g, other := f.generator(), f.generator()
	f.exec("UPDATE generators SET pak_hash = encode(sha256(id::text::bytea), 'hex')")
	s, so := f.stack(g), f.stack(other)
	a := f.agent(true)
	f.target(a, s)
	gs := models.Scope{Role: models.RoleGenerator, GeneratorID: g}
	os := models.Scope{Role: models.RoleGenerator, GeneratorID: other}

	genStack, _, err := h.StackDeploymentObjects(bg, gs, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	genEvents, _, err := h.AgentEvents(bg, gs, nil)
	if err != nil {
		t.Fatal(err)
	}
	agentStack, _, err := h.StackDeploymentObjects(bg, agentScope(a), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherStack, _, err := h.StackDeploymentObjects(bg, os, so, nil)
	if err != nil {
		t.Fatal(err)
	}

	f.exec("UPDATE generators SET pak_hash = encode(sha256('rotated'::bytea), 'hex') WHERE id = ?", g)
	closedWithin(t, genStack, wait)
	closedWithin(t, genEvents, wait)
	if sc := <-revoked; sc != gs {
		t.Fatalf("revoked %+v, want %+v", sc, gs)
	}
	f.exec("UPDATE agents SET pak_hash = encode(sha256('rotated'::bytea), 'hex') WHERE id = ?", a)
	closedWithin(t, agentStack, wait)
	// The other generator's subscription is untouched, until it is deactivated.
	seq := f.object(so)
	h.Published(bg)
	equal(t, recvN(t, otherStack, 1, wait), []int64{seq})
	f.exec("UPDATE generators SET is_active = false WHERE id = ?", other)
	closedWithin(t, otherStack, wait)
	// A deactivated generator cannot subscribe.
	if _, _, err := h.AgentEvents(bg, os, nil); models.ErrorKind(err) != models.KindUnauthenticated {
		t.Fatalf("deactivated generator subscribing: %v", err)
	}
}

// An agent event whose transaction commits long after it began (its
// created_at is the transaction's start) still reaches live subscribers,
// however far newer events have moved the feed's cursor meanwhile: the hub
// does not read past the start of any transaction still running. (With a
// fixed look-back, 5 s by default and 50 ms here, it was lost.)
func TestAgentEventCommittedLate(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{PollInterval: 20 * time.Millisecond, EventLookback: 50 * time.Millisecond})
	s := f.stack(f.generator())
	a := f.agent(true)
	var d uuid.UUID
	f.scan(&d, "SELECT id FROM deployment_objects WHERE sequence_id = ?", f.object(s))
	ch, _, err := h.AgentEvents(bg, admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	recv := func() uuid.UUID {
		t.Helper()
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatal("the subscription ended")
			}
			return e.ID
		case <-time.After(wait):
			t.Fatal("no event")
		}
		return uuid.Nil
	}
	insert := "INSERT INTO agent_events (agent_id, deployment_object_id, event_type, status) VALUES (?, ?, 'DEPLOY', ?) RETURNING id"

	tx, err := db.Bun.BeginTx(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var late uuid.UUID
	if err := tx.NewRaw(insert, a, d, "LATE").Scan(bg, &late); err != nil {
		t.Fatal(err)
	}
	// Newer events commit and are delivered while the first is pending,
	// well past the look-back.
	for i := range 3 {
		time.Sleep(150 * time.Millisecond)
		var id uuid.UUID
		f.scan(&id, insert, a, d, "SUCCESS")
		h.Published(bg)
		if got := recv(); got != id {
			t.Fatalf("event %d: got %s, want %s", i, got, id)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	h.Published(bg)
	if got := recv(); got != late {
		t.Fatalf("got %s, want the late event %s", got, late)
	}
	select { // and only once
	case e := <-ch:
		t.Fatalf("unexpected event %s", e.ID)
	case <-time.After(300 * time.Millisecond):
	}
}

// A dashboard subscription shows what the matching query shows its scope,
// object by object (models.StackView, models.EventView): the owner of a
// deleted stack sees neither its deletion marker nor an agent's event about
// it (its queries answer NOT_FOUND and hide the event); an admin sees both;
// an agent's stack subscription falls silent while the agent is INACTIVE.
// (The first feed applied its own copy of the rules and sent all of them.)
func TestDashboardsFollowTheScope(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{PollInterval: 50 * time.Millisecond})
	g := f.generator()
	s, kept := f.stack(g), f.stack(g)
	a := f.agent(true)
	f.target(a, s)
	f.target(a, kept)
	gs := models.GeneratorScope(g)
	sub := func(sc models.Scope, stack uuid.UUID) <-chan *models.DeploymentObject {
		ch, _, err := h.StackDeploymentObjects(bg, sc, stack, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	ownerStack, adminStack, agentKept := sub(gs, s), sub(admin, s), sub(agentScope(a), kept)
	ownerEvents, _, err := h.AgentEvents(bg, gs, nil)
	if err != nil {
		t.Fatal(err)
	}
	adminEvents, _, err := h.AgentEvents(bg, admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)

	f.exec("UPDATE stacks SET deleted_at = now() WHERE id = ?", s)
	var marker int64
	f.scan(&marker, "SELECT sequence_id FROM deployment_objects WHERE stack_id = ? AND is_deletion_marker", s)
	h.Published(bg)
	equal(t, recvN(t, adminStack, 1, wait), []int64{marker})
	f.event(a, marker) // the agent removed the stack's resources
	h.Published(bg)
	if e := recvEvent(t, adminEvents); e.AgentID != a {
		t.Fatalf("admin: event %+v", e)
	}
	quiet(t, ownerStack, 300*time.Millisecond)
	select {
	case e := <-ownerEvents:
		t.Fatalf("the owner got the event about a deleted stack's marker: %+v", e)
	case <-time.After(300 * time.Millisecond):
	}

	f.exec("UPDATE agents SET status = 'INACTIVE' WHERE id = ?", a)
	f.object(kept)
	h.Published(bg)
	quiet(t, agentKept, 300*time.Millisecond)
	f.exec("UPDATE agents SET status = 'ACTIVE' WHERE id = ?", a)
	n := f.object(kept)
	h.Published(bg)
	equal(t, recvN(t, agentKept, 1, wait), []int64{n})
}

func recvEvent(t testing.TB, ch <-chan *models.AgentEvent) *models.AgentEvent {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("the subscription ended")
		}
		return e
	case <-time.After(wait):
		t.Fatal("no event")
	}
	return nil
}
