package feed

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// Table tests of the agent feed's state machine: no database, no hub.

var (
	stackA = uuid.MustParse("00000000-0000-0000-0000-00000000000a")
	stackB = uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	stackC = uuid.MustParse("00000000-0000-0000-0000-00000000000c")
	agentX = uuid.MustParse("00000000-0000-0000-0000-0000000000ff")
	born   = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	now    = born.Add(time.Hour)
)

// obj is the deployment object with sequence seq of stack st.
func obj(st uuid.UUID, seq int64) *models.DeploymentObject {
	return &models.DeploymentObject{SequenceID: seq, StackID: st}
}

// tg is a target of stack st; carried unless the agent is inactive.
type tg struct {
	st      uuid.UUID
	carried bool
	// announced: -2 not announced, -1 announced in order, n handed over at n.
	announced int64
	acked     bool
}

func row(key string, targets ...tg) *models.FeedAgentState {
	r := &models.FeedAgentState{ID: agentX, PakHash: key}
	for i, t := range targets {
		ft := models.FeedTarget{StackID: t.st, CreatedAt: born.Add(time.Duration(i) * time.Minute), Carried: t.carried, Acked: t.acked}
		if t.announced > -2 {
			ft.Announced, ft.AnnouncedSeq = true, &t.announced
		}
		r.Targets = append(r.Targets, ft)
	}
	return r
}

// loaded is the state after reading r.
func loaded(r *models.FeedAgentState) agentState { return stateOf(r) }

// latestAt is the latest object of each stack as of the watermark 20:
// A's is 5, B's 12, C's 18.
var latestAt = map[uuid.UUID]*models.DeploymentObject{stackA: obj(stackA, 5), stackB: obj(stackB, 12), stackC: obj(stackC, 18)}

func seqsOf(objs []*models.DeploymentObject) string {
	var s []string
	for _, o := range objs {
		s = append(s, fmt.Sprint(o.SequenceID))
	}
	return "[" + strings.Join(s, " ") + "]"
}

func names(ids []uuid.UUID) string {
	n := map[uuid.UUID]string{stackA: "A", stackB: "B", stackC: "C"}
	var s []string
	for _, id := range ids {
		if name, ok := n[id]; ok {
			s = append(s, name)
		} else {
			s = append(s, "?")
		}
	}
	return strings.Join(s, ",")
}

func changesOf(cs []*models.AgentTargetChange) string {
	var s []string
	for _, c := range cs {
		s = append(s, string(c.Action)+":"+names([]uuid.UUID{c.StackID}))
	}
	return strings.Join(s, " ")
}

// TestStep: one transition each, while feeds are answered (online) or not.
func TestStep(t *testing.T) {
	active := row("k", tg{stackA, true, -1, false})
	cases := []struct {
		name string
		prev agentState
		row  *models.FeedAgentState
		// want
		changes, index, unindex string
		forced                  string
		revoke, gone            bool
	}{
		{name: "first load: nothing to compare with", prev: agentState{}, row: active,
			index: "A", forced: "[]"},
		{name: "target added while online", prev: loaded(active), row: row("k", tg{stackA, true, -1, false}, tg{stackC, true, -2, false}),
			changes: "ADDED:C", index: "C", forced: "[18]"},
		{name: "target added to an inactive agent", prev: loaded(row("k", tg{stackA, false, -1, false})), row: row("k", tg{stackA, false, -1, false}, tg{stackC, false, -2, false}),
			changes: "ADDED:C", forced: "[]"},
		{name: "target removed while online", prev: loaded(row("k", tg{stackA, true, -1, false}, tg{stackB, true, -1, false})), row: active,
			changes: "REMOVED:B", unindex: "B", forced: "[]"},
		{name: "activation hands over every stack, in sequence order", prev: loaded(row("k", tg{stackC, false, -2, false}, tg{stackA, false, -2, false})),
			row: row("k", tg{stackC, true, -2, false}, tg{stackA, true, -2, false}), index: "A,C", forced: "[5 18]"},
		{name: "deactivation stops the feed", prev: loaded(row("k", tg{stackA, true, -1, false}, tg{stackB, true, -1, false})),
			row: row("k", tg{stackA, false, -1, false}, tg{stackB, false, -1, false}), unindex: "A,B", forced: "[]"},
		{name: "deletion", prev: loaded(row("k", tg{stackA, true, -1, false}, tg{stackB, true, -1, false})), row: nil,
			unindex: "A,B", forced: "[]", revoke: true, gone: true},
		{name: "key rotation closes what was answered, whatever else changed", prev: loaded(active), row: row("k2", tg{stackC, true, -2, false}),
			index: "C", unindex: "A", forced: "[]", revoke: true},
		{name: "nothing changed", prev: loaded(active), row: active, forced: "[]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next, fx := step(c.prev, agentChange{row: c.row, latest: latestAt, wm: 20, now: now})
			got := fmt.Sprintf("changes %q index %q unindex %q forced %s revoke %v gone %v",
				changesOf(fx.changes), names(fx.index), names(fx.unindex), seqsOf(fx.forced), fx.revoke, fx.gone)
			want := fmt.Sprintf("changes %q index %q unindex %q forced %s revoke %v gone %v",
				c.changes, c.index, c.unindex, c.forced, c.revoke, c.gone)
			if got != want {
				t.Fatalf("\n got %s\nwant %s", got, want)
			}
			if c.row != nil && (!next.loaded || next.pakHash != c.row.PakHash) {
				t.Fatalf("next state %+v", next)
			}
			if c.row == nil && next.loaded {
				t.Fatal("a deleted agent's state stays loaded")
			}
		})
	}
}

func TestStepTargetChangeTimes(t *testing.T) {
	prev := loaded(row("k", tg{stackA, true, -1, false}, tg{stackB, true, -1, false}))
	r := row("k", tg{stackA, true, -1, false}, tg{stackC, true, -2, false})
	_, fx := step(prev, agentChange{row: r, latest: latestAt, wm: 20, now: now})
	if len(fx.changes) != 2 || !fx.changes[0].At.Equal(r.Targets[1].CreatedAt) || !fx.changes[1].At.Equal(now) || fx.changes[0].AgentID != agentX {
		t.Fatalf("changes %+v: ADDED at the target's creation, REMOVED at the round's time", fx.changes)
	}
}

// startOf runs a step for one new feed.
func startOf(prev agentState, r *models.FeedAgentState, after *int64) feedStart {
	_, fx := step(prev, agentChange{row: r, latest: latestAt, wm: 20, now: now, feeds: []*int64{after}})
	return fx.starts[0]
}

func describe(st feedStart) string {
	return fmt.Sprintf("initial %s forced %v announce %q replay %q (%d,%d] cursor %d",
		seqsOf(st.initial), st.forced, names(st.announce), names(st.stacks), st.from, st.to, st.cursor)
}

func TestStartWithoutAfter(t *testing.T) {
	for _, c := range []struct {
		name string
		prev agentState
		row  *models.FeedAgentState
		want string
	}{
		{"the desired state, in sequence order", agentState{}, row("k", tg{stackC, true, -2, false}, tg{stackA, true, -1, false}),
			`initial [5 18] forced false announce "C" replay "" (0,0] cursor 20`},
		{"an inactive agent's feed is silent", agentState{}, row("k", tg{stackC, false, -2, false}),
			`initial [] forced false announce "" replay "" (0,0] cursor 20`},
		{"a stack without objects is announced, nothing sent", agentState{}, row("k", tg{stackA, true, -2, false}, tg{uuid.New(), true, -2, false}),
			`initial [5] forced false announce "A,?" replay "" (0,0] cursor 20`},
		{"a second feed of a loaded agent: announced already, nothing to write", loaded(row("k", tg{stackB, true, -1, false})), row("k", tg{stackB, true, -1, false}),
			`initial [12] forced false announce "" replay "" (0,0] cursor 20`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := describe(startOf(c.prev, c.row, nil)); got != c.want {
				t.Fatalf("\n got %s\nwant %s", got, c.want)
			}
		})
	}
}

// TestStartResumeAtEveryCursor: an agent targeting A (latest 5, announced
// in order) and B (latest 12, handed over out of order at feed position 12),
// resuming at every position around them and the watermark (20).
func TestStartResumeAtEveryCursor(t *testing.T) {
	r := row("k", tg{stackA, true, -1, false}, tg{stackB, true, 12, false})
	for after := int64(0); after <= 22; after++ {
		st := startOf(loaded(r), r, &after)
		var wantInitial string
		switch {
		case after < 12:
			wantInitial = "[]" // B's 12 comes with the replay
		case after == 12:
			wantInitial = "[12]" // handed over at 12: perhaps lost with the connection
		default:
			wantInitial = "[]" // resumed after a later position: B's 12 arrived
		}
		if got := seqsOf(st.initial); got != wantInitial {
			t.Errorf("after %d: initial %s, want %s", after, got, wantInitial)
		}
		wantReplay := after < 20
		if gotReplay := len(st.stacks) > 0; gotReplay != wantReplay || (wantReplay && (st.from != after || st.to != 20)) {
			t.Errorf("after %d: replay %s (%d,%d], want one: %v", after, names(st.stacks), st.from, st.to, wantReplay)
		}
		if st.cursor != max(after, 20) || !st.forced || st.after != after {
			t.Errorf("after %d: %s", after, describe(st))
		}
		if got := names(st.announce); got != "" {
			t.Errorf("after %d: announce %q, want none (both announced)", after, got)
		}
	}
}

// TestStartHandOver: which targets a resume after 15 sends again, and
// which it marks announced.
func TestStartHandOver(t *testing.T) {
	after := int64(15)
	for _, c := range []struct {
		name     string
		t        tg
		initial  string
		announce string
	}{
		{"added while away, never announced", tg{stackB, true, -2, false}, "[12]", ""},
		{"announced in order: came in sequence", tg{stackB, true, -1, false}, "[]", ""},
		{"handed over at 15, not acknowledged", tg{stackB, true, 15, false}, "[12]", ""},
		{"handed over at 15, acknowledged by an event", tg{stackB, true, 15, true}, "[]", ""},
		{"handed over at 14, resumed after a later position", tg{stackB, true, 14, false}, "[]", ""},
		{"inactive: nothing", tg{stackB, false, -2, false}, "[]", ""},
		{"its latest lies above after: the replay has it", tg{stackC, true, -2, false}, "[]", "C"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := startOf(agentState{}, row("k", c.t), &after)
			if got := seqsOf(st.initial); got != c.initial {
				t.Fatalf("initial %s, want %s", got, c.initial)
			}
			if got := names(st.announce); got != c.announce {
				t.Fatalf("announce %q, want %q", got, c.announce)
			}
		})
	}
}

func TestStartInactiveResume(t *testing.T) {
	r := row("k", tg{stackA, false, -1, false})
	for _, after := range []int64{3, 25} {
		if got, want := describe(startOf(loaded(r), r, &after)), fmt.Sprintf(`initial [] forced false announce "" replay "" (0,0] cursor %d`, max(after, 20)); got != want {
			t.Errorf("after %d:\n got %s\nwant %s", after, got, want)
		}
	}
}

func TestToRead(t *testing.T) {
	r := row("k", tg{stackA, true, -1, false}, tg{stackB, true, -1, false}, tg{stackC, false, -1, false})
	for _, c := range []struct {
		name       string
		prev       agentState
		feedsStart bool
		want       string
	}{
		{"first load without feeds: nothing to hand over", agentState{}, false, ""},
		{"first load with a feed: every carried stack", agentState{}, true, "A,B"},
		{"loaded: the stacks it starts carrying", loaded(row("k", tg{stackA, true, -1, false})), false, "B"},
		{"loaded, a new feed: every carried stack", loaded(row("k", tg{stackA, true, -1, false})), true, "A,B"},
	} {
		if got := names(c.prev.toRead(r, c.feedsStart)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if got := (agentState{}).toRead(nil, true); got != nil {
		t.Errorf("a deleted agent: %v", got)
	}
}

// Out-of-order hand-over in a sequence of steps: a target added online is
// handed over (forced), and a feed started in the same round gets the
// stack's latest object with its desired state, not twice.
func TestStepHandOverAndNewFeedTogether(t *testing.T) {
	prev := loaded(row("k", tg{stackA, true, -1, false}))
	r := row("k", tg{stackA, true, -1, false}, tg{stackB, true, -2, false})
	_, fx := step(prev, agentChange{row: r, latest: latestAt, wm: 20, now: now, feeds: []*int64{nil, ptr(int64(20))}})
	if seqsOf(fx.forced) != "[12]" || len(fx.starts) != 2 {
		t.Fatalf("forced %s, %d starts", seqsOf(fx.forced), len(fx.starts))
	}
	if got := describe(fx.starts[0]); got != `initial [5 12] forced false announce "B" replay "" (0,0] cursor 20` {
		t.Fatalf("new feed without after: %s", got)
	}
	if got := describe(fx.starts[1]); got != `initial [12] forced true announce "" replay "" (0,0] cursor 20` {
		t.Fatalf("new feed after 20: %s", got)
	}
	if !slices.Equal(stacksOf(fx.forced), []uuid.UUID{stackB}) {
		t.Fatalf("stacksOf(forced) = %v", stacksOf(fx.forced))
	}
}

func ptr[T any](v T) *T { return &v }
