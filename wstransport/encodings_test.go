package wstransport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/feed"
)

// subscribe dials a websocket with key and subscribes to query.
func (w *world) subscribe(t *testing.T, ctx context.Context, key, query string, vars map[string]any) *websocket.Conn {
	t.Helper()
	conn := w.open(t, ctx, key, false)
	p, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err := wsjson.Write(ctx, conn, wsMsg{ID: "s", Type: "subscribe", Payload: p}); err != nil {
		t.Fatal(err)
	}
	return conn
}

// nextPayload reads conn's next result and returns its payload as sent.
func nextPayload(t *testing.T, ctx context.Context, conn *websocket.Conn) string {
	t.Helper()
	for {
		var m wsMsg
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			t.Fatal(err)
		}
		switch m.Type {
		case "next":
			return string(m.Payload)
		case "ping", "pong":
		default:
			t.Fatalf("got %s %s", m.Type, m.Payload)
		}
	}
}

// One object delivered to subscriptions that ask the same fields of it is
// encoded once for them all (wstransport's encodings): each still gets the
// answer to its own selection, aliases and field order included, whoever
// asks (an agent, an admin following its feed) and from wherever it resumed.
func TestSharedAnswersFollowEachSelection(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := newWorldWith(t, func(e *env) api.Config { return api.Config{Feed: runFeed(t, ctx, e, feed.Options{})} })
	const agentFields = `subscription($after: Int64, $agent: ID) { agentDeploymentObjects(after: $after, agentId: $agent) { id sequenceId stack { id } } }`
	subs := []struct {
		name, key, query string
		vars             map[string]any
		skip             int // answers before the live one: the desired state or a replay
	}{
		{"agent", w.agent1.key, agentFields, nil, 1},
		{"agent from after 0", w.agent1.key, agentFields, map[string]any{"after": 0}, 2},
		{"admin", w.admin, agentFields, map[string]any{"agent": w.agent1.id}, 1},
		{"another order", w.agent1.key, `subscription { agentDeploymentObjects { sequenceId id stack { name id } } }`, nil, 1},
		{"an alias", w.agent1.key, `subscription { feed: agentDeploymentObjects { key: id } }`, nil, 1},
	}
	conns := make([]*websocket.Conn, len(subs))
	for i, s := range subs {
		conns[i] = w.subscribe(t, ctx, s.key, s.query, s.vars)
		for range s.skip {
			nextPayload(t, ctx, conns[i])
		}
	}
	id := w.object(t, "v: 3\n")
	var seq int64
	got := make([]string, len(subs))
	for i := range subs {
		got[i] = nextPayload(t, ctx, conns[i])
		if i == 0 {
			var r struct {
				Data struct{ AgentDeploymentObjects struct{ SequenceID int64 } }
			}
			_ = json.Unmarshal([]byte(got[0]), &r)
			seq = r.Data.AgentDeploymentObjects.SequenceID
		}
	}
	want := []string{
		fmt.Sprintf(`{"data":{"agentDeploymentObjects":{"id":"%s","sequenceId":%d,"stack":{"id":"%s"}}}}`, id, seq, w.stackA),
		fmt.Sprintf(`{"data":{"agentDeploymentObjects":{"id":"%s","sequenceId":%d,"stack":{"id":"%s"}}}}`, id, seq, w.stackA),
		fmt.Sprintf(`{"data":{"agentDeploymentObjects":{"id":"%s","sequenceId":%d,"stack":{"id":"%s"}}}}`, id, seq, w.stackA),
		fmt.Sprintf(`{"data":{"agentDeploymentObjects":{"sequenceId":%d,"id":"%s","stack":{"name":"web","id":"%s"}}}}`, seq, id, w.stackA),
		fmt.Sprintf(`{"data":{"feed":{"key":"%s"}}}`, id),
	}
	for i, s := range subs {
		if got[i] != want[i] {
			t.Errorf("%s: got %s\nwant %s", s.name, got[i], want[i])
		}
	}
}
