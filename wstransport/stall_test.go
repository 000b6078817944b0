package wstransport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/feed"
)

// stallRig is a server whose feed buffers 16 objects per subscription (4
// MiB of this test's objects: the fast subscriber, whose client decodes
// each 256 KiB object, is not cut off when a loaded machine slows it) and
// whose websockets give a client 1 s to take a message.
type stallRig struct {
	*world
	ctx context.Context
	url string
}

func newStallRig(t *testing.T) *stallRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	w := newWorldWith(t, func(e *env) api.Config {
		return api.Config{Feed: runFeed(t, ctx, e, feed.Options{BufferSize: 16}), WebsocketWriteTimeout: time.Second}
	})
	return &stallRig{world: w, ctx: ctx, url: "ws" + strings.TrimPrefix(w.srv.URL, "http") + "/query"}
}

// subscribe opens a connection for agent 1's feed (a stalled one, small,
// with a 4 KiB receive buffer, so that little sits in the kernel).
func (r *stallRig) subscribe(t *testing.T, small bool, after *int64) *websocket.Conn {
	t.Helper()
	opts := &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}}
	if small {
		d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		opts.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	conn, _, err := websocket.Dial(r.ctx, r.url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	conn.SetReadLimit(1 << 20)
	if m, err := initWS(r.ctx, conn, r.agent1.key); err != nil || m.Type != "connection_ack" {
		t.Fatalf("init: %+v %v", m, err)
	}
	vars := map[string]any{}
	if after != nil {
		vars["after"] = *after
	}
	p, _ := json.Marshal(map[string]any{"query": `subscription($after: Int64) { agentDeploymentObjects(after: $after) { sequenceId yamlContent } }`, "variables": vars})
	if err := wsjson.Write(r.ctx, conn, wsMsg{ID: "f", Type: "subscribe", Payload: p}); err != nil {
		t.Fatal(err)
	}
	return conn
}

// read reads the next object's sequence id (end "") or how the
// subscription ended: "complete", or "closed" (the connection).
func (r *stallRig) read(conn *websocket.Conn) (seq int64, end string) {
	for {
		var m struct {
			Type    string
			Payload struct {
				Data struct {
					AgentDeploymentObjects struct{ SequenceID json.Number }
				}
			}
		}
		if err := wsjson.Read(r.ctx, conn, &m); err != nil {
			return 0, "closed"
		}
		switch m.Type {
		case "next":
			n, _ := m.Payload.Data.AgentDeploymentObjects.SequenceID.Int64()
			return n, ""
		case "complete":
			return 0, "complete"
		}
	}
}

// logged tells whether a line of the server's log holds every part.
func (r *stallRig) logged(parts ...string) bool {
	for _, line := range strings.Split(r.logText(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

func (r *stallRig) seqOf(conn *websocket.Conn) (int64, bool) {
	seq, end := r.read(conn)
	return seq, end == ""
}

// bigObjects submits n objects of 256 KiB to stack A and returns their
// sequence ids.
func (r *stallRig) bigObjects(t *testing.T, n int) []int64 {
	t.Helper()
	big := "k: " + strings.Repeat("x", 256<<10) + "\n"
	var seqs []int64
	for i := range n {
		d := r.ok(t, r.genA.key, `mutation($s: ID!, $y: String!) { createDeploymentObject(input: {stackId: $s, yamlContent: $y}) { sequenceId } }`,
			map[string]any{"s": r.stackA, "y": fmt.Sprintf("i: %d\n%s", i, big)})
		s, _ := strconv.ParseInt(fmt.Sprint(d["createDeploymentObject"].(map[string]any)["sequenceId"]), 10, 64)
		seqs = append(seqs, s)
	}
	return seqs
}

// A client that stops reading does not hold up anyone: while it stalls,
// another subscriber of the same feed receives every object; the stalled
// one is cut off (its socket full, its feed buffer full, then its write
// deadline) and, resuming with after, gets exactly what it missed.
func TestStalledWebsocketClientIsCutOffAndResumes(t *testing.T) {
	t.Parallel()
	r := newStallRig(t)
	stalled := r.subscribe(t, true, nil)
	first, ok := r.seqOf(stalled) // the desired state: A's latest object
	if !ok {
		t.Fatal("no desired state")
	}
	fast := r.subscribe(t, false, nil)
	if s, ok := r.seqOf(fast); !ok || s != first {
		t.Fatalf("fast subscriber's desired state %d, want %d", s, first)
	}
	fastGot := make(chan int64, 64) // the fast subscriber reads all the time
	go func() {
		defer close(fastGot)
		for s, ok := r.seqOf(fast); ok; s, ok = r.seqOf(fast) {
			fastGot <- s
		}
	}()
	// 40 objects of 256 KiB: ten MiB, far more than the stalled client's
	// socket buffers and feed buffer hold.
	const n = 40
	want := r.bigObjects(t, n)
	for i, s := range want {
		if got, ok := <-fastGot; !ok || got != s {
			t.Fatalf("fast subscriber's object %d: %d (%v), want %d", i, got, ok, s)
		}
	}
	// Past the write deadline, the stalled client reads what reached it:
	// a prefix of the objects, in order, then the end of its connection
	// (closed by the deadline, not a completed subscription waiting on a
	// write that never ends).
	time.Sleep(2 * time.Second)
	var got []int64
	end := ""
	for end == "" {
		var s int64
		if s, end = r.read(stalled); end == "" {
			got = append(got, s)
		}
	}
	if len(got) >= n || end != "closed" {
		t.Fatalf("the stalled client got %d of %d objects, then %s; want a prefix, then its connection closed by the write deadline", len(got), n, end)
	}
	// The observer (the access log) is told who ended it and why.
	// (The line follows the end of the server's reader: wait for it.)
	for !r.logged(`msg="websocket close"`, "close_code=1006", "closed_by=server", "write timeout") {
		if r.ctx.Err() != nil {
			t.Fatalf("no access-log line for the stalled connection's cut-off:\n%s", r.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, s := range got {
		if s != want[i] {
			t.Fatalf("stalled client's object %d: %d, want %d (got %v)", i, s, want[i], got)
		}
	}
	after := first
	if len(got) > 0 {
		after = got[len(got)-1]
	}
	t.Logf("stalled client got %d of %d objects before it was cut off", len(got), n)
	resumed := r.subscribe(t, false, &after)
	for _, s := range want[len(got):] {
		if g, ok := r.seqOf(resumed); !ok || g != s {
			t.Fatalf("resumed after %d: got %d (%v), want %d", after, g, ok, s)
		}
	}
}
