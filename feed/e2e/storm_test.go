package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
)

// A reconnect storm: 500 agents on websockets lose their connections at
// once and resume with after while objects are committed every 10 ms; each
// then has every object committed since, exactly once, in order.
// (BenchmarkWebsocketServerSide's storm runs it with 10,000 agents and
// reports handshakes per second.)
func TestReconnectStorm(t *testing.T) {
	t.Parallel()
	const agents = 500
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db := dbtest.New(t)
	stack, keys := seedAgents(t, db, agents)
	s := startServer(t, db, feed.Options{})
	commit := func(y string) (int64, error) {
		var seq int64
		err := db.Bun.NewRaw(`INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
			VALUES (?, ?, encode(sha256(convert_to(?, 'UTF8')), 'hex')) RETURNING sequence_id`, stack, y, y).Scan(ctx, &seq)
		return seq, err
	}
	if _, err := commit("warm: up"); err != nil {
		t.Fatal(err)
	}
	sw := newSwarm("ws"+strings.TrimPrefix(s.url, "http")+"/query", keys)
	t.Cleanup(sw.drop)
	if err := sw.connectAll(ctx, 32); err != nil {
		t.Fatal(err)
	}
	waitOrFail(t, sw.allHave(1), "every agent's first object")
	sw.reset()

	var seqs []int64
	var failed error
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { // an object every 10 ms while the storm lasts
		defer close(stopped)
		for i := 0; ; i++ {
			seq, err := commit(fmt.Sprintf("s: %d", i))
			if err != nil {
				failed = err
				return
			}
			seqs = append(seqs, seq)
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	time.Sleep(50 * time.Millisecond) // some objects reach the agents live first
	took, err := sw.storm(ctx, 64)
	time.Sleep(50 * time.Millisecond) // and some after they are back
	close(stop)
	<-stopped
	if err != nil || failed != nil {
		t.Fatalf("storm: %v; committing: %v", err, failed)
	}
	waitOrFail(t, sw.allHave(len(seqs)), fmt.Sprintf("every agent's %d objects", len(seqs)))
	if lost, dup := sw.check(seqs); lost != 0 || dup != 0 {
		t.Fatalf("%d objects over the storm: %d lost, %d duplicated", len(seqs), lost, dup)
	}
	t.Logf("%d agents back in %v (%.0f handshakes/s), %d objects each, none lost or duplicated",
		agents, took, agents/took.Seconds(), len(seqs))
}

func waitOrFail(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(2 * time.Minute):
		t.Fatalf("timed out waiting for %s", what)
	}
}
