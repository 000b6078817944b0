package main

// HTTP timeouts and the per-key websocket cap of the brokkr binary (issue 8,
// item 6), set through its environment.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/brokkr/brokkr/dbtest"
)

// With read, write and idle timeouts of one second: a body trickled after
// complete headers is answered 408 (BAD_USER_INPUT); an idle keep-alive
// connection is closed; a websocket lives on far beyond them (hijacked
// connections keep no deadline); a dashboard read whose execution is held
// longer than the write timeout still gets its whole answer (the write
// timeout counts from the answer's first byte); and a key's second websocket
// is refused with 1013 (BROKKR_MAX_WEBSOCKETS_PER_KEY=1).
func TestHTTPTimeouts(t *testing.T) {
	db := dbtest.New(t)
	p := startBrokkr(t, []string{"DATABASE_URL=" + db.URL, "BROKKR_READ_TIMEOUT=1s", "BROKKR_WRITE_TIMEOUT=1s",
		"BROKKR_IDLE_TIMEOUT=1s", "BROKKR_MAX_WEBSOCKETS_PER_KEY=1"}, "serve")
	admin := p.adminKey()
	w := makeWorld(t, p.base, admin)
	addr := strings.TrimPrefix(p.base, "http://")

	t.Run("trickled body", func(t *testing.T) {
		conn, br := rawConn(t, addr)
		fmt.Fprintf(conn, "POST /query HTTP/1.1\r\nHost: brokkr\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\":")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body: %v", err)
		}
		var doc gqlResponse
		raw, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(raw, &doc)
		if resp.StatusCode != http.StatusRequestTimeout || len(doc.Errors) != 1 || doc.Errors[0].Extensions["code"] != "BAD_USER_INPUT" {
			t.Fatalf("stalled body: %d %s, want 408 BAD_USER_INPUT", resp.StatusCode, raw)
		}
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		conn, br := rawConn(t, addr)
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: brokkr\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("idle connection not closed by the server: %v", err)
		}
	})

	t.Run("websocket outlives the timeouts", func(t *testing.T) {
		ws := dialWS(t, p.base, w.agentKey)
		ws.subscribeFeed()
		// The second websocket of the same key is over the cap.
		ws2 := dialRaw(t, p.base)
		ws2.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + w.agentKey}})
		expectClose(t, ws2.closed(), 1013, 20*time.Second, "a key's second websocket")
		time.Sleep(3 * time.Second) // three times every timeout, and no keep-alive yet (15 s)
		seq := submit(t, p.base, w.genKey, w.stackID, "after: the timeouts\n")
		if got, _ := ws.nextObject(); got != seq {
			t.Fatalf("websocket after the timeouts: seq %d, want %d", got, seq)
		}
		ws.conn.Close(websocket.StatusNormalClosure, "")
	})

	t.Run("slow large read", func(t *testing.T) {
		big := strings.Repeat("x", 20_000)
		for i := range 30 {
			submit(t, p.base, w.genKey, w.stackID, fmt.Sprintf("n: %d\nbig: %s\n", i, big))
		}
		// Hold the read in the database for longer than the write timeout:
		// stack_labels is read by this query and by nothing in the background.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		lock, err := pgx.Connect(ctx, db.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Close(ctx)
		tx, err := lock.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "LOCK TABLE stack_labels IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		type answer struct {
			r   gqlResponse
			err error
		}
		got := make(chan answer, 1)
		go func() {
			var a answer
			a.r, a.err = gqlErr(p.base, admin, `{ stacks { nodes { labels deploymentObjects(first: 100) { nodes { yamlContent } } } } }`)
			got <- a
		}()
		waitFor(t, 30*time.Second, "the read to wait on the lock", func() bool {
			var n int
			err := lock.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE relation = 'stack_labels'::regclass AND NOT granted").Scan(&n)
			return err == nil && n > 0
		})
		time.Sleep(2 * time.Second) // past the write timeout
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		a := <-got
		if a.err != nil || len(a.r.Errors) > 0 {
			t.Fatalf("slow read: %v %+v", a.err, a.r.Errors)
		}
		var d struct {
			Stacks struct {
				Nodes []struct {
					DeploymentObjects struct {
						Nodes []struct{ YamlContent string }
					}
				}
			}
		}
		if err := json.Unmarshal(a.r.Data, &d); err != nil || len(d.Stacks.Nodes) != 1 || len(d.Stacks.Nodes[0].DeploymentObjects.Nodes) != 31 {
			t.Fatalf("slow read: %v, %d bytes of data", err, len(a.r.Data))
		}
	})
}

// rawConn is a plain TCP connection to addr whose reads give up after 20 s.
func rawConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	return conn, bufio.NewReader(conn)
}

// dialRaw opens a graphql-transport-ws websocket without initialising it.
func dialRaw(t *testing.T, base string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/query",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return &wsClient{t: t, conn: conn, ctx: ctx}
}

// gqlErr posts a query and returns its answer, or why there was none.
func gqlErr(base, key, query string) (gqlResponse, error) {
	body, _ := json.Marshal(map[string]any{"query": query})
	req, _ := http.NewRequest(http.MethodPost, base+"/query", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	var r gqlResponse
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return r, fmt.Errorf("reading the answer (%d bytes so far): %w", len(raw), err)
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("%d: %s: %w", resp.StatusCode, raw[:min(len(raw), 200)], err)
	}
	return r, nil
}

func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", bound, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
