package feed_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/models"
)

const wait = 5 * time.Second

// Without after: the desired state (latest live object of each targeted
// stack, in sequence order), then live objects of targeted stacks only.
func TestAgentFeedDesiredStateThenLive(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{})
	g := f.generator()
	s1, s2, other := f.stack(g), f.stack(g), f.stack(g)
	a := f.agent(true)
	f.target(a, s1)
	f.target(a, s2)
	f.object(s1)
	l2 := f.object(s2)
	l1 := f.object(s1)
	f.object(other)

	ch := feedOf(t, h, a, nil)
	equal(t, recvN(t, ch, 2, wait), []int64{l2, l1})

	f.object(other)
	n1 := f.object(s2)
	h.Published(bg)
	equal(t, recvN(t, ch, 1, wait), []int64{n1})

	// Written without Published (as from psql): the poll finds it.
	n2 := f.object(s1)
	equal(t, recvN(t, ch, 1, wait), []int64{n2})

	var announced int
	f.scan(&announced, "SELECT count(*) FROM agent_targets WHERE agent_id = ? AND announced_at IS NOT NULL", a)
	if announced != 2 {
		t.Fatalf("announced targets = %d, want 2", announced)
	}
}

func TestAgentFeedScope(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{})
	g := f.generator()
	a, b := f.agent(true), f.agent(true)
	cases := []struct {
		name  string
		scope models.Scope
		agent uuid.UUID
		kind  models.Kind
	}{
		{"generator", models.Scope{Role: models.RoleGenerator, GeneratorID: g}, a, models.KindForbidden},
		{"other agent", agentScope(a), b, models.KindNotFound},
		{"admin without agent", admin, uuid.Nil, models.KindInvalid},
		{"admin unknown agent", admin, uuid.New(), models.KindNotFound},
		{"deleted agent itself", agentScope(uuid.New()), uuid.Nil, models.KindUnauthenticated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := h.AgentDeploymentObjects(bg, c.scope, c.agent, nil)
			if models.ErrorKind(err) != c.kind {
				t.Fatalf("err = %v, want kind %s", err, c.kind)
			}
		})
	}
	// An admin may watch any agent's feed.
	s := f.stack(g)
	f.target(b, s)
	seq := f.object(s)
	ch, _, err := h.AgentDeploymentObjects(bg, admin, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, recvN(t, ch, 1, wait), []int64{seq})
}

// With after: exactly the objects committed after it, markers included, then
// live; nothing twice at the seam.
func TestAgentFeedResumeAfter(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{})
	g := f.generator()
	s1, s2 := f.stack(g), f.stack(g)
	a := f.agent(true)
	f.target(a, s1)
	f.target(a, s2)
	ctx, cancel := context.WithCancel(bg)
	ch, _, err := h.AgentDeploymentObjects(ctx, agentScope(a), uuid.Nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := f.object(s1)
	h.Published(bg)
	equal(t, recvN(t, ch, 1, wait), []int64{first})
	cancel()
	closedWithin(t, ch, wait)

	// Missed while away: two objects and a stack deletion (its object is
	// soft-deleted, its marker is new).
	m1 := f.object(s2)
	f.object(s1)
	f.exec("UPDATE stacks SET deleted_at = now() WHERE id = ?", s1)
	var marker int64
	f.scan(&marker, "SELECT sequence_id FROM deployment_objects WHERE stack_id = ? AND is_deletion_marker", s1)

	ch = feedOf(t, h, a, ptr(first))
	equal(t, recvN(t, ch, 2, wait), []int64{m1, marker})
	live := f.object(s2)
	h.Published(bg)
	equal(t, recvN(t, ch, 1, wait), []int64{live})
	quiet(t, ch, 300*time.Millisecond)
}

// DESIGN §3.3: transaction A inserts first; B inserts while A is open (it
// waits for A's sequence lock), A commits, then B. A subscriber resuming from
// any point gets every object, in order.
func TestOrderingTwoTransactions(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{})
	g := f.generator()
	s := f.stack(g)
	a := f.agent(true)
	f.target(a, s)
	base := f.object(s)

	live := feedOf(t, h, a, nil)
	equal(t, recvN(t, live, 1, wait), []int64{base})
	waitAnnounced(t, f, a, 1)

	insert := `INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
	           VALUES (?, ?, encode(sha256(convert_to(?, 'UTF8')), 'hex')) RETURNING sequence_id`
	txA, err := db.Bun.BeginTx(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seqA int64
	if err := txA.NewRaw(insert, s, "a: 1", "a: 1").Scan(bg, &seqA); err != nil {
		t.Fatal(err)
	}
	seqB := make(chan int64, 1)
	go func() {
		txB, err := db.Bun.BeginTx(bg, nil)
		if err != nil {
			t.Error(err)
			return
		}
		var seq int64
		if err := txB.NewRaw(insert, s, "b: 1", "b: 1").Scan(bg, &seq); err != nil {
			t.Error(err)
			return
		}
		if err := txB.Commit(); err != nil {
			t.Error(err)
		}
		seqB <- seq
	}()
	// B is blocked on A's sequence lock: nothing is visible yet.
	time.Sleep(200 * time.Millisecond)
	h.Published(bg)
	quiet(t, live, 300*time.Millisecond)
	if err := txA.Commit(); err != nil {
		t.Fatal(err)
	}
	b := <-seqB
	h.Published(bg)
	if b <= seqA {
		t.Fatalf("B's sequence %d not above A's %d", b, seqA)
	}
	equal(t, recvN(t, live, 2, wait), []int64{seqA, b})
	for _, from := range []int64{0, base, seqA} {
		ch := feedOf(t, h, a, ptr(from))
		var want []int64
		for _, q := range []int64{base, seqA, b} {
			if q > from {
				want = append(want, q)
			}
		}
		equal(t, recvN(t, ch, len(want), wait), want)
	}
}

func TestTargetAddRemove(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{})
	g := f.generator()
	s1, s2 := f.stack(g), f.stack(g)
	a := f.agent(true)
	f.target(a, s1)
	l2 := f.object(s2)

	ch := feedOf(t, h, a, nil)
	changes := targetChangesOf(t, h, a)
	quiet(t, ch, 100*time.Millisecond)

	// A new target delivers the stack's latest object at once.
	f.target(a, s2)
	equal(t, recvN(t, ch, 1, wait), []int64{l2})
	c := recvChange(t, changes)
	if c.Action != models.TargetAdded || c.StackID != s2 || c.AgentID != a {
		t.Fatalf("change = %+v, want ADDED %s", c, s2)
	}
	n := f.object(s2)
	h.Published(bg)
	equal(t, recvN(t, ch, 1, wait), []int64{n})

	// A removed target stops the stack's objects.
	f.untarget(a, s2)
	c = recvChange(t, changes)
	if c.Action != models.TargetRemoved || c.StackID != s2 {
		t.Fatalf("change = %+v, want REMOVED %s", c, s2)
	}
	f.object(s2)
	n1 := f.object(s1)
	h.Published(bg)
	equal(t, recvN(t, ch, 1, wait), []int64{n1})
}

func recvChange(t testing.TB, ch <-chan *models.AgentTargetChange) *models.AgentTargetChange {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("target changes closed")
		}
		return c
	case <-time.After(wait):
		t.Fatal("no target change")
	}
	return nil
}

// targetWorld: an active agent targeting s1 and subscribed (it has received
// cur, s1's object); s2 is not targeted yet and its latest object, old, lies
// below the agent's cursor.
type targetWorld struct {
	h             *feed.Hub
	f             *fixture
	generator     uuid.UUID
	agent, s1, s2 uuid.UUID
	old, cur      int64
	ch            <-chan *models.DeploymentObject
	cancel        context.CancelFunc
}

func newTargetWorld(t *testing.T) *targetWorld {
	t.Helper()
	db := dbtest.New(t)
	w := &targetWorld{f: newFixture(t, db)}
	w.h, _ = startHub(t, db, feed.Options{})
	w.generator = w.f.generator()
	w.s1, w.s2 = w.f.stack(w.generator), w.f.stack(w.generator)
	w.agent = w.f.agent(true)
	w.f.target(w.agent, w.s1)
	w.old = w.f.object(w.s2)
	w.cur = w.f.object(w.s1)
	ctx, cancel := context.WithCancel(bg)
	t.Cleanup(cancel)
	ch, _, err := w.h.AgentDeploymentObjects(ctx, agentScope(w.agent), uuid.Nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, recvN(t, ch, 1, wait), []int64{w.cur})
	w.ch, w.cancel = ch, cancel
	return w
}

// A target added while the agent was away is delivered on resume even though
// its latest object is below after; once, not on every resume.
func TestTargetAddedWhileAway(t *testing.T) {
	t.Parallel()
	w := newTargetWorld(t)
	h, f, a, s2, old, cur := w.h, w.f, w.agent, w.s2, w.old, w.cur
	ch, cancel := w.ch, w.cancel
	var (
		ctx context.Context
		err error
	)
	waitAnnounced(t, f, a, 1)
	cancel()
	closedWithin(t, ch, wait)

	f.target(a, s2) // while away
	ctx, cancel = context.WithCancel(bg)
	ch, _, err = h.AgentDeploymentObjects(ctx, agentScope(a), uuid.Nil, ptr(cur))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, recvN(t, ch, 1, wait), []int64{old})
	waitAnnounced(t, f, a, 2)
	f.event(a, old) // the agent applied it and said so
	cancel()
	closedWithin(t, ch, wait)

	// Announced and acknowledged: the next resume does not repeat it.
	ch = feedOf(t, h, a, ptr(cur))
	quiet(t, ch, 300*time.Millisecond)
	n := f.object(s2)
	h.Published(bg)
	equal(t, recvN(t, ch, 1, wait), []int64{n})

	// A newly targeted stack whose objects are newer than after: the
	// resuming feed's replay delivers them, each once (no extra "latest").
	s3 := f.stack(w.generator)
	o3a, o3b := f.object(s3), f.object(s3)
	f.target(a, s3)
	ch2 := feedOf(t, h, a, ptr(n))
	got := recvN(t, ch2, 2, wait)
	equal(t, got, []int64{o3a, o3b})
	quiet(t, ch2, 300*time.Millisecond)
}

// A new target's latest object is handed over out of sequence order; if
// the connection dies before the agent got it, its resume point cannot show
// that, so the object comes again (never lost). Once the agent has received
// anything later, or reported an event for it, it does not.
func TestNewTargetObjectLostWithConnectionIsDeliveredAgain(t *testing.T) {
	t.Parallel()
	w := newTargetWorld(t)
	h, f, a, s1, s2, old, cur := w.h, w.f, w.agent, w.s1, w.s2, w.old, w.cur
	ch, cancel := w.ch, w.cancel
	var (
		ctx context.Context
		err error
	)
	f.target(a, s2) // live: the hub hands `old` to the subscription ...
	waitAnnounced(t, f, a, 2)
	cancel() // ... and the connection dies before the agent read it
	closedWithin(t, ch, wait)

	// Resume from the last object the agent did get: `old` comes (again).
	ctx, cancel = context.WithCancel(bg)
	ch, _, err = h.AgentDeploymentObjects(ctx, agentScope(a), uuid.Nil, ptr(cur))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, recvN(t, ch, 1, wait), []int64{old})
	// The agent gets a later object too, so its resume point moves past
	// the hand-over: the next resume does not repeat `old`.
	n := f.object(s1)
	h.Published(bg)
	equal(t, recvN(t, ch, 1, wait), []int64{n})
	cancel()
	closedWithin(t, ch, wait)

	ch = feedOf(t, h, a, ptr(n))
	quiet(t, ch, 300*time.Millisecond)
}

func waitAnnounced(t testing.TB, f *fixture, agent uuid.UUID, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var c int
		f.scan(&c, "SELECT count(*) FROM agent_targets WHERE agent_id = ? AND announced_at IS NOT NULL", agent)
		if c == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("announced targets = %d, want %d", c, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Objects arrive with their stack attached (deleted stacks too, for markers).
func TestObjectsCarryTheirStack(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{})
	g := f.generator()
	s := f.stack(g)
	a := f.agent(true)
	f.target(a, s)
	f.object(s)
	ch := feedOf(t, h, a, nil)
	for i, marker := range []bool{false, true} {
		if marker {
			f.exec("UPDATE stacks SET deleted_at = now() WHERE id = ?", s)
		}
		select {
		case o := <-ch:
			if o.IsDeletionMarker != marker || o.Stack == nil || o.Stack.ID != s || (marker && o.Stack.DeletedAt == nil) {
				t.Fatalf("object %d: marker=%v stack=%+v", i, o.IsDeletionMarker, o.Stack)
			}
		case <-time.After(wait):
			t.Fatal("no object")
		}
	}
}
