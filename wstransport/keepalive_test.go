package wstransport_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/api"
)

// Idle websockets get the keep-alive of their protocol every interval, from
// the central keep-alive: graphql-transport-ws a ping (answered with pong,
// and the connection still works), legacy graphql-ws "ka". Nothing is sent
// before the connection_ack, even to a client slow to send connection_init.
func TestWebsocketKeepAlive(t *testing.T) {
	t.Parallel()
	const every = 160 * time.Millisecond
	w := newWorld(t, api.Config{KeepAlive: every})
	for _, tc := range []struct{ proto, ka string }{
		{"graphql-transport-ws", "ping"},
		{"graphql-ws", "ka"},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn, _, err := w.dialWS(t, ctx, tc.proto, nil)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * every) // several ticks before connection_init
			if m, err := initWS(ctx, conn, w.agent1.key); err != nil || m.Type != "connection_ack" {
				t.Fatalf("first message after init: %+v %v, want connection_ack", m, err)
			}
			start := time.Now()
			var got []time.Time
			for len(got) < 4 {
				var m wsMsg
				if err := wsjson.Read(ctx, conn, &m); err != nil {
					t.Fatalf("after %d keep-alives: %v", len(got), err)
				}
				if m.Type != tc.ka {
					t.Fatalf("got %s %s, want %s", m.Type, m.Payload, tc.ka)
				}
				got = append(got, time.Now())
				if tc.ka == "ping" {
					if err := wsjson.Write(ctx, conn, wsMsg{Type: "pong"}); err != nil {
						t.Fatal(err)
					}
				}
			}
			// The legacy protocol gets one "ka" right after the ack; the
			// rest come one interval apart (with a tick's jitter; the upper
			// bound leaves room for a machine loaded by the parallel race
			// suite, where one run once took 2.1 s).
			if d := got[3].Sub(got[1]); d < every || d > 2*every+5*time.Second {
				t.Fatalf("two keep-alive intervals took %v, want about %v", d, 2*every)
			}
			if time.Since(start) > 3*every+5*time.Second {
				t.Fatalf("4 keep-alives took %v", time.Since(start))
			}
			if tc.proto != "graphql-transport-ws" {
				return
			}
			// The connection still serves: a client's ping is answered.
			if err := wsjson.Write(ctx, conn, wsMsg{Type: "ping"}); err != nil {
				t.Fatal(err)
			}
			for {
				var m wsMsg
				if err := wsjson.Read(ctx, conn, &m); err != nil {
					t.Fatal(err)
				}
				if m.Type == "pong" {
					return
				}
				if m.Type != "ping" {
					t.Fatalf("got %s %s", m.Type, m.Payload)
				}
			}
		})
	}
}
