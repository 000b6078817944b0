package wstransport_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/wstransport"
)

// One key may hold at most MaxWebsocketsPerKey websockets at once (issue
// 8, item 6): one more is closed at connection_init with 1013 (try again
// later), in both protocols, and counted (Sessions.Refusals, a metric);
// other keys are not affected, and once one of the key's connections ends a
// new one is admitted.
func TestWebsocketsPerKeyCap(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sessions := wstransport.NewSessions()
	w := newWorld(t, api.Config{MaxWebsocketsPerKey: 2, Sessions: sessions})
	open := func(proto, key string) (*websocket.Conn, string, error) {
		t.Helper()
		c, _, err := w.dialWS(t, ctx, proto, nil)
		if err != nil {
			t.Fatal(err)
		}
		m, err := initWS(ctx, c, key)
		return c, m.Type, err
	}
	var mine []*websocket.Conn
	for range 2 {
		c, typ, err := open("graphql-transport-ws", w.agent1.key)
		if err != nil || typ != "connection_ack" {
			t.Fatalf("websocket within the cap: %q %v", typ, err)
		}
		mine = append(mine, c)
	}
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		c, typ, err := open(proto, w.agent1.key)
		if proto == "graphql-ws" && err == nil && typ == "connection_error" {
			err = readAll(ctx, c)
		}
		if code := websocket.CloseStatus(err); code != wstransport.CloseTooManyWebsockets {
			t.Fatalf("%s: one websocket over the cap: %q, closed with %v (%v), want %d", proto, typ, code, err, wstransport.CloseTooManyWebsockets)
		}
	}
	if n := sessions.Refusals(); n != 2 {
		t.Fatalf("%d refusals counted, want 2", n)
	}
	if _, typ, err := open("graphql-transport-ws", w.agent2.key); err != nil || typ != "connection_ack" {
		t.Fatalf("another key refused: %q %v", typ, err)
	}
	mine[0].Close(websocket.StatusNormalClosure, "")
	// The server forgets the closed connection once it has read the close.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, typ, err := open("graphql-transport-ws", w.agent1.key)
		if err == nil && typ == "connection_ack" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no websocket admitted after one of the key's closed: %q %v", typ, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.ok(t, w.agent1.key, `{ viewer { role } }`, nil)
}

// readAll reads until the connection ends and returns the error that ended it.
func readAll(ctx context.Context, c *websocket.Conn) error {
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return err
		}
	}
}
