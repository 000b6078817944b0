package wstransport_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/google/uuid"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/models"
	"github.com/brokkr/brokkr/wstransport"
)

// open dials a websocket and acknowledges it with key; with feed, it also
// subscribes to the agent feed and reads its first object.
func (w *world) open(t *testing.T, ctx context.Context, key string, feed bool) *websocket.Conn {
	t.Helper()
	conn, _, err := w.dialWS(t, ctx, "graphql-transport-ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := initWS(ctx, conn, key); err != nil || m.Type != "connection_ack" {
		t.Fatalf("init: %+v %v", m, err)
	}
	if !feed {
		return conn
	}
	sub, _ := json.Marshal(map[string]any{"query": `subscription { agentDeploymentObjects { id } }`})
	if err := wsjson.Write(ctx, conn, wsMsg{ID: "f", Type: "subscribe", Payload: sub}); err != nil {
		t.Fatal(err)
	}
	for {
		var m wsMsg
		if err := wsjson.Read(ctx, conn, &m); err != nil || m.Type == "next" {
			return conn
		}
	}
}

// closedWith reads conn until it closes and returns the close code, in the
// background; the channel yields it.
func closedWith(ctx context.Context, conn *websocket.Conn) <-chan websocket.StatusCode {
	ch := make(chan websocket.StatusCode, 1)
	go func() { ch <- readUntilClose(ctx, conn) }()
	return ch
}

func wantClose(t *testing.T, ch <-chan websocket.StatusCode, want websocket.StatusCode, who string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("%s: closed with %d, want %d", who, got, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: not closed", who)
	}
}

// Shutdown (Sessions.CloseAll) closes every websocket with 1012, idle or
// subscribed, in both protocols' clients' eyes the same, and refuses new
// ones (503, Retry-After).
func TestCloseAllClosesWebsocketsWith1012(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sessions := wstransport.NewSessions()
	w := newWorldWith(t, func(e *env) api.Config {
		return api.Config{Feed: runFeed(t, ctx, e, feed.Options{}), Sessions: sessions}
	})
	subscribed := closedWith(ctx, w.open(t, ctx, w.agent1.key, true))
	idle := closedWith(ctx, w.open(t, ctx, w.admin, false))
	sessions.CloseAll()
	wantClose(t, subscribed, wstransport.CloseServiceRestart, "subscribed websocket")
	wantClose(t, idle, wstransport.CloseServiceRestart, "idle websocket")
	_, resp, err := w.dialWS(t, ctx, "graphql-transport-ws", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a websocket during shutdown: %v %v", resp, err)
	}
	if n := sessions.Count(); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
}

// Revoke closes a principal's websockets with 4401 and no one else's;
// Recheck closes those whose key no longer works (here rotated, with no
// feed to tell anyone), and RecheckAll every such one, in one statement.
func TestRevokeAndRecheckClose4401(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sessions := wstransport.NewSessions()
	w := newWorld(t, api.Config{Sessions: sessions})
	agent1 := closedWith(ctx, w.open(t, ctx, w.agent1.key, false))
	agent2 := closedWith(ctx, w.open(t, ctx, w.agent2.key, false))
	gen := closedWith(ctx, w.open(t, ctx, w.genA.key, false))
	admin := closedWith(ctx, w.open(t, ctx, w.admin, false))

	sessions.Revoke(models.AgentScope(uuid.MustParse(w.agent1.id)))
	wantClose(t, agent1, wstransport.CloseRevoked, "revoked agent")

	w.ok(t, w.admin, `mutation($id: ID!) { rotateAgentKey(id: $id) { apiKey } }`, map[string]any{"id": w.agent2.id})
	w.ok(t, w.admin, `mutation($id: ID!) { rotateGeneratorKey(id: $id) { apiKey } }`, map[string]any{"id": w.genA.id})
	sessions.Recheck(models.GeneratorScope(uuid.MustParse(w.genA.id)))
	wantClose(t, gen, wstransport.CloseRevoked, "rechecked generator")
	select {
	case code := <-agent2:
		t.Fatalf("agent 2 closed (%d) by another principal's recheck", code)
	case <-time.After(200 * time.Millisecond):
	}
	sessions.RecheckAll()
	wantClose(t, agent2, wstransport.CloseRevoked, "agent 2, by RecheckAll")
	select {
	case code := <-admin:
		t.Fatalf("the admin's websocket closed (%d), its key still works", code)
	case <-time.After(200 * time.Millisecond):
	}
}
