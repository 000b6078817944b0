package feed_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/models"
)

func testLogger() *slog.Logger {
	if os.Getenv("FEED_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startHub runs a hub on db until the test ends (or stop is called).
func startHub(t testing.TB, db *dbtest.DB, opts feed.Options) (h *feed.Hub, stop func()) {
	t.Helper()
	h = feed.New(db.Bun, db.URL, testLogger(), opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	var once atomic.Bool
	stop = func() {
		if once.Swap(true) {
			return
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("hub.Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("hub.Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	h.Channel() // waits until started
	return h, stop
}

// fixture builds rows with plain SQL, as any client could.
type fixture struct {
	t  testing.TB
	db *bun.DB
	n  atomic.Int64
}

func newFixture(t testing.TB, db *dbtest.DB) *fixture { return &fixture{t: t, db: db.Bun} }

func (f *fixture) exec(q string, args ...any) {
	f.t.Helper()
	if _, err := f.db.ExecContext(context.Background(), q, args...); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
}

func (f *fixture) scan(dest any, q string, args ...any) {
	f.t.Helper()
	if err := f.db.NewRaw(q, args...).Scan(context.Background(), dest); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
}

func (f *fixture) generator() uuid.UUID {
	f.t.Helper()
	var id uuid.UUID
	f.scan(&id, "INSERT INTO generators (name) VALUES (?) RETURNING id", fmt.Sprintf("gen-%d", f.n.Add(1)))
	return id
}

func (f *fixture) stack(gen uuid.UUID) uuid.UUID {
	f.t.Helper()
	var id uuid.UUID
	f.scan(&id, "INSERT INTO stacks (name, generator_id) VALUES (?, ?) RETURNING id", fmt.Sprintf("stack-%d", f.n.Add(1)), gen)
	return id
}

func (f *fixture) agent(active bool) uuid.UUID {
	f.t.Helper()
	status := "INACTIVE"
	if active {
		status = "ACTIVE"
	}
	var id uuid.UUID
	f.scan(&id, "INSERT INTO agents (name, cluster_name, status, pak_hash) VALUES (?, 'c', ?, encode(sha256(gen_random_uuid()::text::bytea), 'hex')) RETURNING id",
		fmt.Sprintf("agent-%d", f.n.Add(1)), status)
	return id
}

func (f *fixture) target(agent, stack uuid.UUID) {
	f.t.Helper()
	f.exec("INSERT INTO agent_targets (agent_id, stack_id) VALUES (?, ?)", agent, stack)
}

func (f *fixture) untarget(agent, stack uuid.UUID) {
	f.t.Helper()
	f.exec("DELETE FROM agent_targets WHERE agent_id = ? AND stack_id = ?", agent, stack)
}

// event records the agent's report about the object with sequence seq.
func (f *fixture) event(agent uuid.UUID, seq int64) {
	f.t.Helper()
	f.exec("INSERT INTO agent_events (agent_id, deployment_object_id, event_type, status) SELECT ?, id, 'DEPLOY', 'SUCCESS' FROM deployment_objects WHERE sequence_id = ?", agent, seq)
}

// object inserts a deployment object and returns its sequence.
func (f *fixture) object(stack uuid.UUID) int64 {
	f.t.Helper()
	var seq int64
	y := fmt.Sprintf("n: %d\n", f.n.Add(1))
	f.scan(&seq, "INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum) VALUES (?, ?, encode(sha256(convert_to(?, 'UTF8')), 'hex')) RETURNING sequence_id", stack, y, y)
	return seq
}

var (
	admin = models.AdminScope
	bg    = context.Background()
)

// feedOf is the agent's own feed (after as in DESIGN §5), made with the
// background context.
func feedOf(t testing.TB, h *feed.Hub, agent uuid.UUID, after *int64) <-chan *models.DeploymentObject {
	t.Helper()
	ch, _, err := h.AgentDeploymentObjects(bg, agentScope(agent), uuid.Nil, after)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// targetChangesOf is the agent's own target changes.
func targetChangesOf(t testing.TB, h *feed.Hub, agent uuid.UUID) <-chan *models.AgentTargetChange {
	t.Helper()
	ch, _, err := h.AgentTargetChanges(bg, agentScope(agent), uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func agentScope(id uuid.UUID) models.Scope { return models.Scope{Role: models.RoleAgent, AgentID: id} }

func ptr[T any](v T) *T { return &v }

// recvN receives n objects or fails after timeout.
func recvN(t testing.TB, ch <-chan *models.DeploymentObject, n int, timeout time.Duration) []int64 {
	t.Helper()
	var got []int64
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case o, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %v (wanted %d objects)", got, n)
			}
			got = append(got, o.SequenceID)
		case <-deadline:
			t.Fatalf("timed out after %v (wanted %d objects)", got, n)
		}
	}
	return got
}

// quiet asserts nothing arrives on ch for d.
func quiet(t testing.TB, ch <-chan *models.DeploymentObject, d time.Duration) {
	t.Helper()
	select {
	case o, ok := <-ch:
		if ok {
			t.Fatalf("unexpected object %d", o.SequenceID)
		}
		t.Fatalf("channel closed unexpectedly")
	case <-time.After(d):
	}
}

// closed asserts ch closes within d (draining whatever is buffered).
func closedWithin[T any](t testing.TB, ch <-chan T, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("channel not closed within %v", d)
		}
	}
}

func equal(t testing.TB, got, want []int64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
