package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// Websocket clients for the API's tests that go through websockets (the
// transport's own tests are in package wstransport).

type wsMsg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// dialWS opens a GraphQL websocket with the given subprotocol and headers.
func (e *env) dialWS(t *testing.T, ctx context.Context, proto string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/query"
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{proto}, HTTPHeader: header})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// initWS sends connection_init with key (none when empty) and returns the
// first answer, or the read error (a close).
func initWS(ctx context.Context, c *websocket.Conn, key string) (wsMsg, error) {
	payload := map[string]any{}
	if key != "" {
		payload["Authorization"] = "Bearer " + key
	}
	p, _ := json.Marshal(payload)
	if err := wsjson.Write(ctx, c, wsMsg{Type: "connection_init", Payload: p}); err != nil {
		return wsMsg{}, err
	}
	var m wsMsg
	err := wsjson.Read(ctx, c, &m)
	return m, err
}

// readUntilClose reads until the server closes and returns the close code.
func readUntilClose(ctx context.Context, c *websocket.Conn) websocket.StatusCode {
	for {
		var m wsMsg
		if err := wsjson.Read(ctx, c, &m); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}
