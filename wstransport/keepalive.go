package wstransport

import (
	"sync"
	"time"
)

// The websocket keep-alive is one goroutine for all connections instead of
// gqlgen's ticker goroutine per connection (KeepAlivePingInterval, which
// moreover only serves the legacy graphql-ws protocol): a goroutine's stack
// is most of what an idle subscription costs. Every KeepAlive interval each
// acknowledged connection gets the keep-alive message of its protocol:
// graphql-transport-ws {"type":"ping"} (the client answers pong), legacy
// graphql-ws {"type":"ka"}. The connections are spread over keepAliveSlots
// ticks per interval, so that 10,000 of them do not all write at once.
const (
	keepAliveSlots   = 16
	keepAliveWriters = 4                // concurrent writes per tick
	keepAliveTimeout = 10 * time.Second // a client that takes no ping for this long is cut off
)

var (
	pingMsg = []byte(`{"type":"ping"}`)
	kaMsg   = []byte(`{"type":"ka"}`)
)

// SetKeepAlive sets the keep-alive interval (0 or less: none).
func (s *Sessions) SetKeepAlive(every time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keepAlive = every
}

// register adds a session; s.mu is held.
func (s *Sessions) register(ws *session) {
	ws.slot = s.nextSlot
	s.nextSlot = (s.nextSlot + 1) % keepAliveSlots
	s.sessions[ws] = struct{}{}
	if !s.pinging && s.keepAlive > 0 {
		s.pinging = true
		go s.pingLoop(s.keepAlive)
	}
}

// pingLoop runs while there are sessions.
func (s *Sessions) pingLoop(every time.Duration) {
	t := time.NewTicker(every / keepAliveSlots)
	defer t.Stop()
	for slot := 0; ; slot = (slot + 1) % keepAliveSlots {
		<-t.C
		s.mu.Lock()
		if len(s.sessions) == 0 {
			s.pinging = false
			s.mu.Unlock()
			return
		}
		var due []*conn
		for ws := range s.sessions {
			if ws.slot != slot {
				continue
			}
			ws.mu.Lock()
			if ws.live && ws.conn != nil {
				due = append(due, ws.conn)
			}
			ws.mu.Unlock()
		}
		s.mu.Unlock()
		pingAll(due)
	}
}

func pingAll(conns []*conn) {
	work := make(chan *conn)
	var wg sync.WaitGroup
	for range min(keepAliveWriters, len(conns)) {
		wg.Go(func() {
			for c := range work {
				msg := kaMsg
				if !c.legacy {
					msg = pingMsg
				}
				// An error means the connection is closing or was cut
				// off for not taking the ping; its read loop ends it.
				_ = c.writeRaw(msg, keepAliveTimeout)
			}
		})
	}
	for _, c := range conns {
		work <- c
	}
	close(work)
	wg.Wait()
}
