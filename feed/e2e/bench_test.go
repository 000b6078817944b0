package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/apikey"
	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
)

// BenchmarkWebsocketFanout: N agents, each on its own websocket
// (graphql-transport-ws, authenticated in connection_init) with an
// agentDeploymentObjects subscription, all targeting one stack, on one
// server; each iteration commits one deployment object and waits until every
// client has it. Reports p50/p99 from commit to receipt at the client, and
// memory per connection (server and client sides together: both run in this
// process).
func BenchmarkWebsocketFanout(b *testing.B) {
	sizes := benchSizes(1000)
	queries := []struct{ name, q string }{
		// The object's own fields: the feed and the transport.
		{"flat", `subscription($after: Int64) { agentDeploymentObjects(after: $after) { id sequenceId isDeletionMarker yamlContent yamlChecksum } }`},
		// Plus stack { id }: one more SQL query per delivered object and client.
		{"with-stack", feedQuery},
	}
	for _, n := range sizes {
		for _, q := range queries {
			b.Run(fmt.Sprintf("conns=%d/query=%s", n, q.name), func(b *testing.B) { benchWebsocketFanout(b, n, q.q) })
		}
	}
}

func benchWebsocketFanout(b *testing.B, n int, query string) {
	db := dbtest.New(b)
	db.Bun.SetMaxOpenConns(16)
	ctx := context.Background()
	stack, keys := seedAgents(b, db, n)
	insert := func(y string) {
		if _, err := db.Bun.ExecContext(ctx, `INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
			VALUES (?, ?, encode(sha256(convert_to(?, 'UTF8')), 'hex'))`, stack, y, y); err != nil {
			b.Fatal(err)
		}
	}
	s := startServer(b, db, feed.Options{})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var round atomic.Pointer[sync.WaitGroup]
	recvAt := make([]time.Time, n)
	conns := dialAgents(b, s, keys, query, func(i int) {
		recvAt[i] = time.Now()
		round.Load().Done()
	})
	defer func() {
		for _, c := range conns {
			_ = c.CloseNow()
		}
	}()
	// Warm-up: one object through every subscription.
	wg := &sync.WaitGroup{}
	wg.Add(n)
	round.Store(wg)
	insert("w: 0")
	waitAll(b, wg)
	runtime.GC()
	var idle runtime.MemStats
	runtime.ReadMemStats(&idle)

	var lat []time.Duration
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		wg := &sync.WaitGroup{}
		wg.Add(n)
		round.Store(wg)
		insert(fmt.Sprintf("n: %d", it))
		committed := time.Now()
		s.hub.Published(ctx)
		waitAll(b, wg)
		for _, t := range recvAt {
			lat = append(lat, t.Sub(committed))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	used := int64(idle.HeapInuse+idle.StackInuse) - int64(before.HeapInuse+before.StackInuse)
	b.ReportMetric(float64(used)/float64(n), "client+server-B/conn")
}

// dialAgents connects one websocket per key (graphql-transport-ws, the key
// in connection_init), subscribes each with query (after 0), and calls
// got(i) for every object client i receives.
func dialAgents(b *testing.B, s *server, keys []string, query string, got func(i int)) []*websocket.Conn {
	ctx := context.Background()
	url := "ws" + strings.TrimPrefix(s.url, "http") + "/query"
	sub, _ := json.Marshal(map[string]any{"query": query, "variables": map[string]any{"after": 0}})
	conns := make([]*websocket.Conn, len(keys))
	for i, key := range keys {
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		conn, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{Subprotocols: []string{transportWS}})
		if err != nil {
			b.Fatal(err)
		}
		p, _ := json.Marshal(map[string]any{"Authorization": "Bearer " + key})
		if err := wsjson.Write(dctx, conn, wsMsg{Type: "connection_init", Payload: p}); err != nil {
			b.Fatal(err)
		}
		var ack wsMsg
		if err := wsjson.Read(dctx, conn, &ack); err != nil || ack.Type != "connection_ack" {
			b.Fatalf("init %d: %+v %v", i, ack, err)
		}
		if err := wsjson.Write(dctx, conn, wsMsg{ID: "f", Type: "subscribe", Payload: sub}); err != nil {
			b.Fatal(err)
		}
		cancel()
		conns[i] = conn
		go func() {
			for {
				var m wsMsg
				if err := wsjson.Read(ctx, conn, &m); err != nil {
					return
				}
				switch m.Type {
				case "ping":
					_ = wsjson.Write(ctx, conn, wsMsg{Type: "pong"})
				case "next":
					got(i)
				}
			}
		}()
	}
	return conns
}

func waitAll(b *testing.B, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatal("not every client received the object")
	}
}

// pgArray is a text[] literal.
func pgArray(ss []string) string { return "{" + strings.Join(ss, ",") + "}" }

// benchSizes is the subscriber counts to run: FEED_WS_BENCH_SIZES
// (comma-separated), else def.
func benchSizes(def ...int) []int {
	s := os.Getenv("FEED_WS_BENCH_SIZES")
	if s == "" {
		return def
	}
	var sizes []int
	for _, f := range strings.Split(s, ",") {
		n, _ := strconv.Atoi(f)
		sizes = append(sizes, n)
	}
	return sizes
}

// seedAgents makes one stack and n ACTIVE agents targeting it, and returns
// the stack and the agents' keys.
func seedAgents(b testing.TB, db *dbtest.DB, n int) (stack string, keys []string) {
	ctx := context.Background()
	if err := db.Bun.NewRaw(`WITH g AS (INSERT INTO generators (name) VALUES ('bench') RETURNING id)
	    INSERT INTO stacks (name, generator_id) SELECT 'bench', id FROM g RETURNING id::text`).Scan(ctx, &stack); err != nil {
		b.Fatal(err)
	}
	keys = make([]string, n)
	hashes := make([]string, n)
	for i := range keys {
		var err error
		if keys[i], hashes[i], err = apikey.New("agent"); err != nil {
			b.Fatal(err)
		}
	}
	exec := func(q string, arg any) {
		if _, err := db.Bun.ExecContext(ctx, q, arg); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	exec(`INSERT INTO agents (name, cluster_name, status, pak_hash)
	      SELECT 'bench-' || i, 'c', 'ACTIVE', h FROM unnest(?::text[]) WITH ORDINALITY AS t(h, i)`, pgArray(hashes))
	exec(`INSERT INTO agent_targets (agent_id, stack_id) SELECT id, ? FROM agents`, stack)
	return stack, keys
}
