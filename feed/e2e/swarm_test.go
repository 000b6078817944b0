package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// A swarm is many agents, one websocket each (graphql-transport-ws, the key
// in connection_init), subscribed to their feed with agentQuery, asking
// what an agent asks. It runs in the test's process (TestReconnectStorm) or
// in a process of its own (BenchmarkWebsocketServerSide, swarmProcess), so
// that the server's memory and CPU are measured alone. Its agents read
// their messages with a few byte searches rather than decoding them: a
// load generator sharing the machine's cores with the server must cost as
// little as it can, or it measures itself.
type swarm struct {
	url    string
	agents []*swarmAgent

	mu      sync.Mutex
	lat     []time.Duration       // commit to receipt of "t: <unix nanos>" objects
	reached map[int]int           // k -> agents that have k objects since reset
	waiting map[int]chan struct{} // k -> closed once every agent has k
}

const agentQuery = `subscription($after: Int64) { agentDeploymentObjects(after: $after) { id sequenceId isDeletionMarker yamlContent stack { id } } }`

// swarmAgent is one agent of the swarm.
type swarmAgent struct {
	s   *swarm
	key string

	mu   sync.Mutex
	conn *websocket.Conn
	done chan struct{} // closed when the connection's reader ends
	seqs []int64       // objects received since reset, in order
	last int64         // the highest sequence received ever: where to resume
}

func newSwarm(url string, keys []string) *swarm {
	s := &swarm{url: url, reached: map[int]int{}, waiting: map[int]chan struct{}{}}
	for _, k := range keys {
		s.agents = append(s.agents, &swarmAgent{s: s, key: k})
	}
	return s
}

// connectAll connects every agent, at most parallel at once, each resuming
// after the last object it received (after: 0 the first time).
func (s *swarm) connectAll(ctx context.Context, parallel int) error {
	sem := make(chan struct{}, parallel)
	errs := make(chan error, len(s.agents))
	var wg sync.WaitGroup
	for _, a := range s.agents {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := a.connect(ctx); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// connect dials, initialises and subscribes after a.last.
func (a *swarmAgent) connect(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, a.s.url, &websocket.DialOptions{Subprotocols: []string{transportWS}})
	if err != nil {
		return err
	}
	conn.SetReadLimit(1 << 20)
	init, _ := json.Marshal(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + a.key}})
	if err := conn.Write(dctx, websocket.MessageText, init); err != nil {
		return err
	}
	if _, ack, err := conn.Read(dctx); err != nil || !bytes.Contains(ack, []byte(`"connection_ack"`)) {
		return fmt.Errorf("connection_init: %s %v", ack, err)
	}
	a.mu.Lock()
	after := a.last
	a.conn, a.done = conn, make(chan struct{})
	done := a.done
	a.mu.Unlock()
	sub, _ := json.Marshal(map[string]any{"id": "f", "type": "subscribe", "payload": map[string]any{"query": agentQuery, "variables": map[string]any{"after": after}}})
	if err := conn.Write(dctx, websocket.MessageText, sub); err != nil {
		return err
	}
	go a.read(conn, done)
	return nil
}

// read handles the connection's messages until it ends.
func (a *swarmAgent) read(conn *websocket.Conn, done chan struct{}) {
	defer close(done)
	ctx := context.Background()
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			return
		}
		switch {
		case bytes.HasPrefix(msg, []byte(`{"type":"ping"`)):
			_ = conn.Write(ctx, websocket.MessageText, []byte(`{"type":"pong"}`))
		case bytes.Contains(msg, []byte(`"type":"next"`)):
			a.got(msg, time.Now())
		}
	}
}

// got records one object.
func (a *swarmAgent) got(msg []byte, at time.Time) {
	seq, _ := intAfter(msg, `"sequenceId":`)
	a.mu.Lock()
	a.seqs = append(a.seqs, seq)
	a.last = max(a.last, seq)
	k := len(a.seqs)
	a.mu.Unlock()
	if ns, ok := intAfter(msg, `"yamlContent":"t: `); ok {
		a.s.mu.Lock()
		a.s.lat = append(a.s.lat, at.Sub(time.Unix(0, ns)))
		a.s.mu.Unlock()
	}
	a.s.reach(k)
}

// intAfter parses the decimal number that follows marker in msg.
func intAfter(msg []byte, marker string) (int64, bool) {
	i := bytes.Index(msg, []byte(marker))
	if i < 0 {
		return 0, false
	}
	rest := msg[i+len(marker):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil
}

// reach notes one more agent with k objects since reset.
func (s *swarm) reach(k int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reached[k]++
	if s.reached[k] == len(s.agents) {
		if ch, ok := s.waiting[k]; ok {
			close(ch)
		} else {
			s.waiting[k] = closedChan
		}
	}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// allHave returns a channel closed once every agent has k objects since
// reset.
func (s *swarm) allHave(k int) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.waiting[k]; ok {
		return ch
	}
	ch := make(chan struct{})
	s.waiting[k] = ch
	return ch
}

// reset forgets the objects received so far (not where to resume).
func (s *swarm) reset() {
	for _, a := range s.agents {
		a.mu.Lock()
		a.seqs = nil
		a.mu.Unlock()
	}
	s.mu.Lock()
	s.reached, s.waiting, s.lat = map[int]int{}, map[int]chan struct{}{}, nil
	s.mu.Unlock()
}

// latencies returns the latencies recorded since the last call, sorted.
func (s *swarm) latencies() []time.Duration {
	s.mu.Lock()
	lat := s.lat
	s.lat = nil
	s.mu.Unlock()
	slices.Sort(lat)
	return lat
}

// drop closes every agent's connection at once, without a close handshake
// (the agents' side of a network cut), and waits for their readers.
func (s *swarm) drop() {
	for _, a := range s.agents {
		a.mu.Lock()
		if a.conn != nil {
			_ = a.conn.CloseNow()
		}
		a.mu.Unlock()
	}
	for _, a := range s.agents {
		a.mu.Lock()
		done := a.done
		a.mu.Unlock()
		if done != nil {
			<-done
		}
	}
}

// storm drops every connection at once and reconnects every agent,
// resuming after the last object it received; it returns the time until
// every agent was acknowledged and subscribed again.
func (s *swarm) storm(ctx context.Context, parallel int) (time.Duration, error) {
	start := time.Now()
	s.drop()
	err := s.connectAll(ctx, parallel)
	return time.Since(start), err
}

// check compares what each agent received since reset with want (every
// object committed since, in order): lost counts objects an agent is
// missing, duplicated objects it received more than once (or out of order).
func (s *swarm) check(want []int64) (lost, duplicated int) {
	for _, a := range s.agents {
		a.mu.Lock()
		got := slices.Clone(a.seqs)
		a.mu.Unlock()
		seen := map[int64]bool{}
		prev := int64(-1)
		for _, q := range got {
			if seen[q] || q <= prev {
				duplicated++
			}
			seen[q], prev = true, q
		}
		for _, q := range want {
			if !seen[q] {
				lost++
			}
		}
	}
	return lost, duplicated
}

// quantile of sorted latencies, in milliseconds.
func quantile(lat []time.Duration, q float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000
}
