package e2e_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
)

// The agent feed over both websocket protocols: desired state, live objects
// of targeted stacks only, a new target's latest object, and a resume with
// after that gets exactly the objects missed while disconnected.
func TestAgentFeedOverWebsocket(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{transportWS, legacyWS} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			db := dbtest.New(t)
			s := startServer(t, db, feed.Options{})
			w := newWorld(t, db, s)
			s1, s2 := w.stack(), w.stack()
			a := w.agent()
			w.target(a, s1)
			o1 := w.object(s1)
			w.object(s2)

			c := dial(t, s, a.key, proto)
			c.subscribe("f", feedQuery, nil)
			equal(t, c.seqs("f", 1), []int64{o1})
			o2 := w.object(s1)
			equal(t, c.seqs("f", 1), []int64{o2})
			last := w.object(s2) // not targeted yet
			c.quiet("f", 300*time.Millisecond)
			w.target(a, s2) // delivers s2's latest at once
			typ, d := c.next("f", wait)
			if typ != "next" || str(d, "agentDeploymentObjects", "stack", "id") != s2 {
				t.Fatalf("new target: %s %v", typ, d)
			}
			if got := str(d, "agentDeploymentObjects", "sequenceId"); got != fmt.Sprint(last) {
				t.Fatalf("new target delivered %s, want %d", got, last)
			}
			_ = c.conn.CloseNow()

			missed := []int64{w.object(s1), w.object(s2)}
			dial(t, s, a.key, proto).resumes("f", last, missed, func() int64 { return w.object(s2) })
		})
	}
}

// The server restarts between two objects: the client's subscription ends,
// and it resumes on the new server with after: exactly the missed objects.
func TestRestartBetweenObjects(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	s1 := startServer(t, db, feed.Options{})
	w := newWorld(t, db, s1)
	st := w.stack()
	a := w.agent()
	w.target(a, st)
	c := dial(t, s1, a.key, transportWS)
	c.subscribe("f", feedQuery, feedVars(ptr(int64(0))))
	first := w.object(st)
	equal(t, c.seqs("f", 1), []int64{first})

	s1.stop()
	if typ, _ := c.next("f", wait); typ != "complete" && typ != "closed" {
		t.Fatalf("after shutdown: %s, want complete or closed", typ)
	}
	s2 := startServer(t, db, feed.Options{})
	w.s = s2
	missed := []int64{w.object(st), w.object(st)}
	dial(t, s2, a.key, transportWS).resumes("f", first, missed, func() int64 { return w.object(st) })
}

// Two replicas on one database: mutations sent to one reach subscribers of
// the other; a stack soft delete delivers its marker to every targeting
// agent, on both replicas.
func TestTwoServersAndDeletionMarker(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	s1 := startServer(t, db, feed.Options{PollInterval: time.Hour})
	s2 := startServer(t, db, feed.Options{PollInterval: time.Hour})
	w := newWorld(t, db, s1)
	st := w.stack()
	a, b := w.agent(), w.agent()
	w.target(a, st)
	w.target(b, st)
	ca := dial(t, s1, a.key, transportWS)
	cb := dial(t, s2, b.key, legacyWS)
	// stack { id } resolves on the marker although the stack is deleted:
	// feed payloads carry their stack.
	const q = `subscription($after: Int64) { agentDeploymentObjects(after: $after) { id sequenceId isDeletionMarker stack { id } } }`
	ca.subscribe("f", q, feedVars(ptr(int64(0))))
	cb.subscribe("f", q, feedVars(ptr(int64(0))))
	time.Sleep(300 * time.Millisecond)
	o := w.objectVia(s1, st)
	equal(t, cb.seqs("f", 1), []int64{o})
	equal(t, ca.seqs("f", 1), []int64{o})
	o = w.objectVia(s2, st)
	equal(t, ca.seqs("f", 1), []int64{o})
	equal(t, cb.seqs("f", 1), []int64{o})

	gql(t, s1, w.genKey, `mutation($id: ID!) { deleteStack(id: $id) { id } }`, map[string]any{"id": st})
	for _, c := range []*ws{ca, cb} {
		typ, d := c.next("f", wait)
		if typ != "next" || str(d, "agentDeploymentObjects", "isDeletionMarker") != "true" {
			t.Fatalf("%s: got %s %v, want the deletion marker", c.proto, typ, d)
		}
		if got := str(d, "agentDeploymentObjects", "stack", "id"); got != st {
			t.Fatalf("%s: marker %v has stack %q, want %s", c.proto, d, got, st)
		}
	}
}

// Key rotation and agent deletion end the agent's subscription.
func TestRotationAndDeletionEndTheFeed(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	s := startServer(t, db, feed.Options{})
	w := newWorld(t, db, s)
	st := w.stack()
	a := w.agent()
	w.target(a, st)
	o := w.object(st)

	c := dial(t, s, a.key, transportWS)
	c.subscribe("f", feedQuery, nil)
	equal(t, c.seqs("f", 1), []int64{o})
	d := gql(t, s, w.admin, `mutation($id: ID!) { rotateAgentKey(id: $id) { apiKey } }`, map[string]any{"id": a.id})
	if typ, _ := c.next("f", wait); typ != "complete" && typ != "closed" {
		t.Fatalf("after rotation: %s, want the subscription to end", typ)
	}
	a.key = str(d, "rotateAgentKey", "apiKey")

	c = dial(t, s, a.key, transportWS)
	c.subscribe("f", feedQuery, feedVars(ptr(o)))
	c.quiet("f", 300*time.Millisecond)
	gql(t, s, w.admin, `mutation($id: ID!) { deleteAgent(id: $id) { id } }`, map[string]any{"id": a.id})
	if typ, _ := c.next("f", wait); typ != "complete" && typ != "closed" {
		t.Fatalf("after deletion: %s, want the subscription to end", typ)
	}
}

// The listener connections of both replicas are killed; objects created
// meanwhile through the API still reach the subscriber.
func TestListenerKilled(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	s1 := startServer(t, db, feed.Options{PollInterval: time.Hour})
	s2 := startServer(t, db, feed.Options{PollInterval: time.Hour})
	w := newWorld(t, db, s1)
	st := w.stack()
	a := w.agent()
	w.target(a, st)
	c := dial(t, s2, a.key, transportWS)
	c.subscribe("f", feedQuery, feedVars(ptr(int64(0))))
	first := w.object(st)
	equal(t, c.seqs("f", 1), []int64{first})
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		var n int
		if err := db.Bun.NewRaw(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = ?`,
			feed.ListenerApplicationName).Scan(t.Context(), &n); err != nil {
			t.Fatal(err)
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d listeners, want 2", n)
		}
	}
	var killed int
	if err := db.Bun.NewRaw(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
	      WHERE datname = current_database() AND application_name = ?`, feed.ListenerApplicationName).Scan(t.Context(), &killed); err != nil || killed != 2 {
		t.Fatalf("killed %d listeners: %v", killed, err)
	}
	want := []int64{w.object(st), w.object(st), w.object(st)}
	equal(t, c.seqs("f", 3), want)
}

// Concurrent writers through the API while agents disconnect and resume at
// random points: each sees every object of its stacks exactly once, in order.
func TestConcurrentWritersAndResumes(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	s := startServer(t, db, feed.Options{})
	w := newWorld(t, db, s)
	stacks := []string{w.stack(), w.stack(), w.stack()}
	agents := []agent{w.agent(), w.agent()}
	w.target(agents[0], stacks[0])
	w.target(agents[0], stacks[1])
	w.target(agents[1], stacks[1])
	w.target(agents[1], stacks[2])

	const writers, each = 4, 25
	var mu sync.Mutex
	byStack := map[string][]int64{}
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				st := stacks[rand.IntN(len(stacks))]
				seq := w.object(st)
				mu.Lock()
				byStack[st] = append(byStack[st], seq)
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	results := make([][]int64, len(agents))
	last := make([]atomic.Int64, len(agents)) // the newest sequence each agent received
	var rwg sync.WaitGroup
	for i, a := range agents {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			var got []int64
			after := int64(0)
			for {
				c := dial(t, s, a.key, transportWS)
				c.subscribe("f", feedQuery, feedVars(ptr(after)))
				until := time.After(time.Duration(50+rand.IntN(150)) * time.Millisecond)
			read:
				for {
					select {
					case m, ok := <-c.msgs:
						if !ok {
							break read
						}
						if m.Type != "next" {
							continue
						}
						var seq int64
						fmt.Sscan(str(decode(m), "agentDeploymentObjects", "sequenceId"), &seq)
						got = append(got, seq)
						after = seq
						last[i].Store(seq)
					case <-until:
						break read
					case <-done:
						_ = c.conn.CloseNow()
						results[i] = got
						return
					}
				}
				_ = c.conn.CloseNow() // whatever was in flight is lost: resume after the last received
			}
		}()
	}
	wg.Wait()
	// Wait until each checked agent has received the newest object of its
	// stacks (or a generous deadline passes: a loaded machine reconnects
	// slowly), then stop the readers and compare everything they got.
	deadline := time.Now().Add(30 * time.Second)
	for i, pair := range [][2]int{{0, 1}, {1, 2}} {
		var newest int64
		for _, st := range pair {
			for _, seq := range byStack[stacks[st]] {
				newest = max(newest, seq)
			}
		}
		for last[i].Load() < newest && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	close(done)
	rwg.Wait()
	for i, pair := range [][2]int{{0, 1}, {1, 2}} {
		want := append(append([]int64{}, byStack[stacks[pair[0]]]...), byStack[stacks[pair[1]]]...)
		sort.Slice(want, func(a, b int) bool { return want[a] < want[b] })
		if fmt.Sprint(results[i]) != fmt.Sprint(want) {
			t.Errorf("agent %d: got %d %v\nwant %d %v", i, len(results[i]), results[i], len(want), want)
		}
	}
}
