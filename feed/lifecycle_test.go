package feed_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/models"
)

// An INACTIVE agent's feed is silent; setting it ACTIVE delivers the desired
// state at once, then live objects.
func TestInactiveThenActive(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{})
	g := f.generator()
	s1, s2 := f.stack(g), f.stack(g)
	a := f.agent(false)
	f.target(a, s1)
	f.target(a, s2)
	l1 := f.object(s1)
	ch := feedOf(t, h, a, nil)
	l2 := f.object(s2)
	h.Published(bg)
	quiet(t, ch, 500*time.Millisecond)

	f.exec("UPDATE agents SET status = 'ACTIVE' WHERE id = ?", a)
	equal(t, recvN(t, ch, 2, wait), []int64{l1, l2})
	n := f.object(s1)
	h.Published(bg)
	equal(t, recvN(t, ch, 1, wait), []int64{n})

	f.exec("UPDATE agents SET status = 'INACTIVE' WHERE id = ?", a)
	time.Sleep(200 * time.Millisecond)
	f.object(s1)
	h.Published(bg)
	quiet(t, ch, 500*time.Millisecond)
}

// Key rotation and deletion close the agent's subscriptions and report the
// agent to OnRevoke; a subscription made with the new key keeps working.
func TestRevocationClosesSubscriptions(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	revoked := make(chan models.Scope, 4)
	h, _ := startHub(t, db, feed.Options{OnRevoke: func(s models.Scope) { revoked <- s }})
	g := f.generator()
	s := f.stack(g)
	a := f.agent(true)
	f.target(a, s)
	seq := f.object(s)

	ch := feedOf(t, h, a, nil)
	changes := targetChangesOf(t, h, a)
	equal(t, recvN(t, ch, 1, wait), []int64{seq})
	time.Sleep(100 * time.Millisecond)

	f.exec("UPDATE agents SET pak_hash = encode(sha256('rotated'::bytea), 'hex') WHERE id = ?", a)
	closedWithin(t, ch, wait)
	closedWithin(t, changes, wait)
	select {
	case sc := <-revoked:
		if sc != agentScope(a) {
			t.Fatalf("revoked %+v, want agent %s", sc, a)
		}
	case <-time.After(wait):
		t.Fatal("OnRevoke not called")
	}

	// The agent reconnects with its new key.
	ch = feedOf(t, h, a, ptr(seq))
	n := f.object(s)
	h.Published(bg)
	equal(t, recvN(t, ch, 1, wait), []int64{n})

	f.exec("UPDATE agents SET deleted_at = now() WHERE id = ?", a)
	closedWithin(t, ch, wait)
	if _, _, err := h.AgentDeploymentObjects(bg, agentScope(a), uuid.Nil, nil); models.ErrorKind(err) != models.KindUnauthenticated {
		t.Fatalf("subscribing as a deleted agent: %v, want UNAUTHENTICATED", err)
	}
}

// A subscriber that does not read is cut off once its buffer is full; the
// others keep receiving everything; the cut-off one resumes with after.
func TestSlowSubscriberCutOff(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{BufferSize: 4})
	g := f.generator()
	s := f.stack(g)
	slow, fast := f.agent(true), f.agent(true)
	f.target(slow, s)
	f.target(fast, s)
	slowCh := feedOf(t, h, slow, nil)
	fastCh := feedOf(t, h, fast, nil)
	time.Sleep(200 * time.Millisecond)
	var want []int64
	var got []int64
	for i := 0; i < 20; i++ {
		want = append(want, f.object(s))
		h.Published(bg)
		got = append(got, recvN(t, fastCh, 1, wait)...)
	}
	equal(t, got, want)
	// The slow one holds what fit in its buffer, then its channel is closed.
	var slowGot []int64
	for o := range slowCh {
		slowGot = append(slowGot, o.SequenceID)
	}
	if len(slowGot) != 4 {
		t.Fatalf("slow subscriber got %v before the cut, want its 4 buffered", slowGot)
	}
	equal(t, slowGot, want[:4])
	// The metrics see the one cut-off and the watermark past the objects.
	if st := h.Stats(); st.CutOffs[feed.KindAgentFeed] != 1 || st.CutOffs[feed.KindStackDashboard] != 0 || st.Watermark < want[19] {
		t.Fatalf("stats %+v, want one agent feed cut off and the watermark at %d or above", st, want[19])
	}
	resumed := feedOf(t, h, slow, ptr(slowGot[3]))
	equal(t, recvN(t, resumed, 16, wait), want[4:])
}

// The listener connection is killed; objects written meanwhile (with their
// NOTIFY lost) still arrive once it reconnects. The poll is off, so only the
// listener's catch-up can deliver them.
func TestListenerKilled(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{PollInterval: time.Hour})
	other, _ := startHub(t, db, feed.Options{PollInterval: time.Hour}) // sends the NOTIFYs
	g := f.generator()
	s := f.stack(g)
	a := f.agent(true)
	f.target(a, s)
	ch := feedOf(t, h, a, nil)
	time.Sleep(200 * time.Millisecond)
	first := f.object(s)
	other.Published(bg)
	equal(t, recvN(t, ch, 1, wait), []int64{first})

	waitListeners(t, f, 2)
	var killed int
	f.scan(&killed, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
	                  WHERE datname = current_database() AND application_name = ?`, feed.ListenerApplicationName)
	if killed != 2 {
		t.Fatalf("terminated %d listener connections, want 2", killed)
	}
	var want []int64
	for i := 0; i < 3; i++ {
		want = append(want, f.object(s))
		other.Published(bg) // most likely lost: nobody is listening
	}
	equal(t, recvN(t, ch, 3, 10*time.Second), want)
	// And the reconnected listener serves new notifications.
	n := f.object(s)
	other.Published(bg)
	equal(t, recvN(t, ch, 1, wait), []int64{n})
}

// Two hubs (two replicas) on one database: a write announced through one
// reaches a subscriber of the other through NOTIFY (the poll is off).
func TestTwoHubs(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h1, _ := startHub(t, db, feed.Options{PollInterval: time.Hour})
	h2, _ := startHub(t, db, feed.Options{PollInterval: time.Hour})
	g := f.generator()
	s := f.stack(g)
	a := f.agent(true)
	f.target(a, s)
	ch := feedOf(t, h2, a, nil)
	time.Sleep(200 * time.Millisecond)
	for i := 0; i < 3; i++ {
		seq := f.object(s)
		h1.Published(bg)
		equal(t, recvN(t, ch, 1, wait), []int64{seq})
	}
	// A target added through any client reaches the other hub by trigger.
	s2 := f.stack(g)
	l2 := f.object(s2)
	f.target(a, s2)
	equal(t, recvN(t, ch, 1, wait), []int64{l2})
}

// The hub stops (a server restart) between two objects; a new hub on the same
// database resumes the agent after the last object it got: exactly the missed.
func TestRestartBetweenObjects(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h1, stop1 := startHub(t, db, feed.Options{})
	g := f.generator()
	s := f.stack(g)
	a := f.agent(true)
	f.target(a, s)
	ch := feedOf(t, h1, a, nil)
	time.Sleep(100 * time.Millisecond)
	first := f.object(s)
	h1.Published(bg)
	equal(t, recvN(t, ch, 1, wait), []int64{first})
	changes := targetChangesOf(t, h1, a)
	events, _, err := h1.AgentEvents(bg, admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	stackCh, _, err := h1.StackDeploymentObjects(bg, admin, s, ptr(int64(0)))
	if err != nil {
		t.Fatal(err)
	}
	stop1() // as on SIGTERM: every subscription closes
	closedWithin(t, ch, wait)
	closedWithin(t, changes, wait)
	closedWithin(t, events, wait)
	closedWithin(t, stackCh, wait)
	if _, _, err := h1.AgentDeploymentObjects(bg, agentScope(a), uuid.Nil, nil); err == nil {
		t.Fatal("a stopped hub accepted a subscription")
	}
	missed := []int64{f.object(s), f.object(s)}

	h2, _ := startHub(t, db, feed.Options{})
	ch = feedOf(t, h2, a, ptr(first))
	equal(t, recvN(t, ch, 2, wait), missed)
	quiet(t, ch, 300*time.Millisecond)
}

// A stack soft delete delivers its deletion marker to every targeting agent.
func TestStackDeleteMarker(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{})
	g := f.generator()
	s := f.stack(g)
	f.object(s)
	var chans []<-chan *models.DeploymentObject
	for i := 0; i < 3; i++ {
		a := f.agent(true)
		f.target(a, s)
		ch := feedOf(t, h, a, nil)
		recvN(t, ch, 1, wait)
		chans = append(chans, ch)
	}
	f.exec("UPDATE generators SET deleted_at = now() WHERE id = ?", g) // cascades to the stack
	h.Published(bg)
	for _, ch := range chans {
		select {
		case o := <-ch:
			if !o.IsDeletionMarker || o.StackID != s || o.YamlContent != "" {
				t.Fatalf("got %+v, want the deletion marker of %s", o, s)
			}
		case <-time.After(wait):
			t.Fatal("no deletion marker")
		}
	}
}

// Many writers while subscribers resume at random points: each sees every
// object of its stacks exactly once, in increasing order.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	h, _ := startHub(t, db, feed.Options{PollInterval: 50 * time.Millisecond})
	g := f.generator()
	stacks := []uuid.UUID{f.stack(g), f.stack(g), f.stack(g), f.stack(g)}
	agents := []uuid.UUID{f.agent(true), f.agent(true), f.agent(true)}
	// agent i targets stacks i and i+1
	for i, a := range agents {
		f.target(a, stacks[i])
		f.target(a, stacks[i+1])
	}
	// Announce the targets (a first feed), so resumes replay only.
	for _, a := range agents {
		ctx, cancel := context.WithCancel(bg)
		if _, _, err := h.AgentDeploymentObjects(ctx, agentScope(a), uuid.Nil, nil); err != nil {
			t.Fatal(err)
		}
		waitAnnounced(t, f, a, 2)
		cancel()
	}

	const writers, each = 8, 50
	byStack := concurrentWrites(t, f, h, stacks, writers, each)
	// Subscribers that disconnect and resume at random moments, from the
	// start; they run while the writers write (started first).
	results := make([][]int64, len(agents))
	var swg sync.WaitGroup
	stopReading := make(chan struct{})
	for i, a := range agents {
		swg.Go(func() { results[i] = resumingReader(t, h, a, stopReading) })
	}
	byStack.wait()
	// Let every subscriber catch up, then stop them.
	time.Sleep(1500 * time.Millisecond)
	close(stopReading)
	swg.Wait()

	total := 0
	for _, v := range byStack.seqs {
		total += len(v)
	}
	if total != writers*each {
		t.Fatalf("wrote %d objects, want %d", total, writers*each)
	}
	for i := range agents {
		want := append(append([]int64{}, byStack.seqs[stacks[i]]...), byStack.seqs[stacks[i+1]]...)
		sort.Slice(want, func(a, b int) bool { return want[a] < want[b] })
		if fmt.Sprint(results[i]) != fmt.Sprint(want) {
			t.Errorf("agent %d: got %d objects %v\nwant %d %v", i, len(results[i]), results[i], len(want), want)
		}
	}
}

// writes is what concurrentWrites wrote, by stack, once wait returns.
type writes struct {
	mu   sync.Mutex
	seqs map[uuid.UUID][]int64
	wg   sync.WaitGroup
}

func (w *writes) wait() { w.wg.Wait() }

// concurrentWrites starts writers, each inserting `each` objects into
// random stacks (and waking the hub now and then).
func concurrentWrites(t *testing.T, f *fixture, h *feed.Hub, stacks []uuid.UUID, writers, each int) *writes {
	w := &writes{seqs: map[uuid.UUID][]int64{}}
	for range writers {
		w.wg.Go(func() {
			for i := 0; i < each; i++ {
				st := stacks[rand.IntN(len(stacks))]
				seq := f.object(st)
				w.mu.Lock()
				w.seqs[st] = append(w.seqs[st], seq)
				w.mu.Unlock()
				if i%5 == 0 {
					h.Published(bg)
				}
			}
		})
	}
	return w
}

// resumingReader follows the agent's feed from the start, disconnecting
// after a random while and resuming after the last object it got, until
// stop; it returns every object it got.
func resumingReader(t *testing.T, h *feed.Hub, a uuid.UUID, stop <-chan struct{}) []int64 {
	var got []int64
	after := ptr(int64(0))
	for {
		ctx, cancel := context.WithCancel(bg)
		ch, _, err := h.AgentDeploymentObjects(ctx, agentScope(a), uuid.Nil, after)
		if err != nil {
			t.Error(err)
			cancel()
			return got
		}
		deadline := time.After(time.Duration(20+rand.IntN(80)) * time.Millisecond)
		stopped := false
	read:
		for {
			select {
			case o, ok := <-ch:
				if !ok {
					break read
				}
				got, after = append(got, o.SequenceID), ptr(o.SequenceID)
			case <-deadline:
				break read
			case <-stop:
				stopped = true
				break read
			}
		}
		cancel()
		for o := range ch { // drain what was in flight: it counts
			got, after = append(got, o.SequenceID), ptr(o.SequenceID)
		}
		if stopped {
			return got
		}
	}
}

// waitListeners waits until n hub listener connections are open on the
// test's database.
func waitListeners(t testing.TB, f *fixture, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var c int
		f.scan(&c, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = ?`, feed.ListenerApplicationName)
		if c == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d listener connections, want %d", c, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
