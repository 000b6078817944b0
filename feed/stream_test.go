package feed_test

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/models"
)

// A subscription's Stream: Notify makes the wake-ups that came before it,
// then every later one, with the value sent (nil for the end); Skip takes
// a value off unread; Stop ends the subscription though its context lives
// on. For each kind of subscription.
func TestStream(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	h, _ := startHub(t, db, feed.Options{})
	f := newFixture(t, db)
	s := f.stack(f.generator())
	a := f.agent(true)
	f.target(a, s)
	first := f.object(s)

	ch, st, err := h.AgentDeploymentObjects(bg, agentScope(a), uuid.Nil, ptr(int64(0)))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, recvN(t, ch, 1, wait), []int64{first}) // sent before Notify
	var mu sync.Mutex
	var woken []any
	st.Notify(func(v any) { mu.Lock(); woken = append(woken, v); mu.Unlock() })
	second := f.object(s)
	if got := recvN(t, ch, 1, wait); got[0] != second {
		t.Fatalf("live object %v, want %d", got, second)
	}
	third := f.object(s)
	waitUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(woken) == 3 })
	if !st.Skip() {
		t.Fatal("Skip found no value ready")
	}
	st.Stop()
	closedWithin(t, ch, wait)
	mu.Lock()
	defer mu.Unlock()
	seqOf := func(v any) int64 { o, _ := v.(*models.DeploymentObject); return o.SequenceID }
	if len(woken) != 4 || seqOf(woken[0]) != first || seqOf(woken[1]) != second || seqOf(woken[2]) != third || woken[3] != nil {
		t.Fatalf("wake-ups %v, want the three objects then nil", woken)
	}

	// The other kinds end with Stop too.
	tch, tst, err := h.AgentTargetChanges(bg, agentScope(a), uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	tst.Stop()
	closedWithin(t, tch, wait)
	ech, est, err := h.AgentEvents(bg, admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	est.Stop()
	closedWithin(t, ech, wait)
	sch, sst, err := h.StackDeploymentObjects(bg, admin, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	sst.Stop()
	closedWithin(t, sch, wait)
}

// waitUntil polls cond until it holds, or fails after wait.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
