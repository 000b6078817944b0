package wstransport_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/auth"
	"github.com/brokkr/brokkr/feed"
)

func TestWebsocketAuthentication(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{AllowedOrigins: []string{"dash.example.com"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		for _, c := range []struct {
			name, key string
		}{
			{"missing key", ""},
			{"unknown key", "brokkr_AAAAAAAA_" + strings.Repeat("A", 43)},
			{"garbage key", "nope"},
		} {
			t.Run(proto+"/"+c.name, func(t *testing.T) {
				conn, _, err := w.dialWS(t, ctx, proto, nil)
				if err != nil {
					t.Fatal(err)
				}
				m, err := initWS(ctx, conn, c.key)
				if err == nil {
					if m.Type == "connection_ack" {
						t.Fatalf("connection acknowledged with %q", c.key)
					}
					if code := readUntilClose(ctx, conn); code != auth.CloseUnauthenticated {
						t.Fatalf("close code %d, want %d (first message %+v)", code, auth.CloseUnauthenticated, m)
					}
					return
				}
				if code := websocket.CloseStatus(err); code != auth.CloseUnauthenticated {
					t.Fatalf("close code %d (%v), want %d", code, err, auth.CloseUnauthenticated)
				}
			})
		}
		t.Run(proto+"/valid key", func(t *testing.T) {
			conn, _, err := w.dialWS(t, ctx, proto, nil)
			if err != nil {
				t.Fatal(err)
			}
			m, err := initWS(ctx, conn, w.agent1.key)
			if err != nil || m.Type != "connection_ack" {
				t.Fatalf("init: %+v %v", m, err)
			}
		})
	}

	t.Run("foreign origin refused", func(t *testing.T) {
		_, resp, err := w.dialWS(t, ctx, "graphql-transport-ws", http.Header{"Origin": {"https://evil.example.org"}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("foreign origin: err=%v resp=%v", err, resp)
		}
	})
	t.Run("allowed origin accepted", func(t *testing.T) {
		conn, _, err := w.dialWS(t, ctx, "graphql-transport-ws", http.Header{"Origin": {"https://dash.example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		if m, err := initWS(ctx, conn, w.admin); err != nil || m.Type != "connection_ack" {
			t.Fatalf("init: %+v %v", m, err)
		}
	})

}

// A subscription on a server without a feed is answered with an error
// (INTERNAL), whose reason is in the server log only.
func TestSubscriptionWithoutFeed(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := w.dialWS(t, ctx, "graphql-transport-ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := initWS(ctx, conn, w.agent1.key); err != nil || m.Type != "connection_ack" {
		t.Fatalf("init: %+v %v", m, err)
	}
	p, _ := json.Marshal(map[string]any{"query": `subscription { agentDeploymentObjects { id } }`})
	if err := wsjson.Write(ctx, conn, wsMsg{ID: "1", Type: "subscribe", Payload: p}); err != nil {
		t.Fatal(err)
	}
	for {
		var m wsMsg
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == "ka" || m.Type == "ping" {
			continue
		}
		if !strings.Contains(string(m.Payload), `"code":"INTERNAL"`) {
			t.Fatalf("got %s %s", m.Type, m.Payload)
		}
		if !strings.Contains(w.logText(), "subscriptions are not available") {
			t.Fatalf("the reason is not in the server log:\n%s", w.logText())
		}
		return
	}
}

// A deployment object created over HTTP reaches an agent subscribed over a
// websocket (graphql-transport-ws), through the real feed.
func TestSubscriptionThroughFeed(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := newWorldWith(t, func(e *env) api.Config { return api.Config{Feed: runFeed(t, ctx, e, feed.Options{})} })

	conn, _, err := w.dialWS(t, ctx, "graphql-transport-ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := initWS(ctx, conn, w.agent1.key); err != nil || m.Type != "connection_ack" {
		t.Fatalf("init: %+v %v", m, err)
	}
	p, _ := json.Marshal(map[string]any{"query": `subscription { agentDeploymentObjects { id yamlContent stack { id name } } }`})
	if err := wsjson.Write(ctx, conn, wsMsg{ID: "1", Type: "subscribe", Payload: p}); err != nil {
		t.Fatal(err)
	}
	next := func() map[string]any {
		t.Helper()
		for {
			var m wsMsg
			if err := wsjson.Read(ctx, conn, &m); err != nil {
				t.Fatal(err)
			}
			switch m.Type {
			case "next":
				var r struct {
					Data   map[string]any
					Errors []gqlError
				}
				if err := json.Unmarshal(m.Payload, &r); err != nil || len(r.Errors) > 0 {
					t.Fatalf("next: %s", m.Payload)
				}
				return r.Data
			case "ping", "pong", "ka":
			default:
				t.Fatalf("unexpected %s %s", m.Type, m.Payload)
			}
		}
	}
	// Without after: the desired state first (A's latest object).
	if d := next(); str(d, "agentDeploymentObjects", "id") != w.objA2 || str(d, "agentDeploymentObjects", "stack", "id") != w.stackA {
		t.Fatalf("first message: %v", d)
	}
	d := w.ok(t, w.genA.key, `mutation($s: ID!) { createDeploymentObject(input: {stackId: $s, yamlContent: "x: 3"}) { id } }`, map[string]any{"s": w.stackA})
	id := str(d, "createDeploymentObject", "id")
	if got := next(); str(got, "agentDeploymentObjects", "id") != id || str(got, "agentDeploymentObjects", "yamlContent") != "x: 3" {
		t.Fatalf("live message: %v, want %s", got, id)
	}
}

// A key rotated while its websocket is open stops working there at once.
func TestWebsocketKeyRotation(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := w.dialWS(t, ctx, "graphql-transport-ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := initWS(ctx, conn, w.agent2.key); err != nil || m.Type != "connection_ack" {
		t.Fatalf("init: %+v %v", m, err)
	}
	ask := func(id string) string {
		t.Helper()
		p, _ := json.Marshal(map[string]any{"query": `{ viewer { role } }`})
		if err := wsjson.Write(ctx, conn, wsMsg{ID: id, Type: "subscribe", Payload: p}); err != nil {
			t.Fatal(err)
		}
		for {
			var m wsMsg
			if err := wsjson.Read(ctx, conn, &m); err != nil {
				t.Fatal(err)
			}
			if m.ID == id && (m.Type == "next" || m.Type == "error") {
				return string(m.Payload)
			}
		}
	}
	if got := ask("1"); !strings.Contains(got, `"role":"AGENT"`) {
		t.Fatalf("before rotation: %s", got)
	}
	w.ok(t, w.admin, `mutation($id: ID!) { rotateAgentKey(id: $id) { apiKey } }`, map[string]any{"id": w.agent2.id})
	if got := ask("2"); !strings.Contains(got, "UNAUTHENTICATED") || strings.Contains(got, `"role"`) {
		t.Fatalf("after rotation: %s", got)
	}
}
