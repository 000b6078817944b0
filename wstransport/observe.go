package wstransport

import (
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/brokkr/brokkr/auth"
	"github.com/brokkr/brokkr/models"
)

// Who ended a websocket (Info.ClosedBy).
const (
	ClosedByServer  = "server"
	ClosedByClient  = "client"
	ClosedByNetwork = "network" // no close frame: the connection dropped, or was cut off unread
)

// closeAbnormal is the close code of a connection that ended without a
// close frame (RFC 6455's 1006, never sent on the wire).
const closeAbnormal = 1006

// Info is what an Observer is told of one websocket.
type Info struct {
	ID          uint64 // in the order connections were accepted, from 1
	Remote      string // the client's address (http.Request.RemoteAddr)
	Subprotocol string
	Opened      time.Time
	// Scope is who is behind the connection (Authed): connection_init's
	// principal, or else that of the upgrade's Authorization header.
	Scope  models.Scope
	Authed bool

	// Set when the connection has ended (Observer.Closed): the close code
	// (1006 for none), its reason, and who closed: the first close seen
	// (the server's, the client's close frame, or the end of the connection
	// without one).
	Code     int
	Reason   string
	ClosedBy string
}

// Observer is told of each websocket the transport accepts and of its end:
// an access log. Its methods run outside the transport's locks, on the
// connection's goroutines: they must not block.
type Observer interface {
	Opened(Info)
	Closed(Info)
}

// SetObserver sets what is told of websockets opening and closing (nil:
// nothing); set it before serving.
func (s *Sessions) SetObserver(o Observer) {
	s.mu.Lock()
	s.observer = o
	s.mu.Unlock()
}

// Refusals is the number of connection_init refused for the per-key cap
// (CloseTooManyWebsockets) so far.
func (s *Sessions) Refusals() uint64 { return s.refusedPerKey.Load() }

func (s *Sessions) currentObserver() Observer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.observer
}

// closeNote is how a connection ended, as the observer is told.
type closeNote struct {
	seen   bool
	code   int
	reason string
	by     string
}

// noteClose records how the connection ended: the first close seen wins.
func (ws *session) noteClose(code int, reason, by string) {
	ws.mu.Lock()
	if !ws.closed.seen {
		ws.closed = closeNote{seen: true, code: code, reason: reason, by: by}
	}
	ws.mu.Unlock()
}

// info is what the observer is told of the session; ws.mu is held.
func (ws *session) infoLocked() Info {
	in := Info{ID: ws.id, Remote: ws.remote, Opened: ws.opened}
	if c := ws.conn; c != nil {
		in.Subprotocol = c.conn.Subprotocol()
		in.Scope, in.Authed = auth.ForContext(c.ctx) // an Authorization header's
	}
	if ws.authed { // connection_init's
		in.Scope, in.Authed = ws.cred.Scope, true
	}
	if n := ws.closed; n.seen {
		in.Code, in.Reason, in.ClosedBy = n.code, n.reason, n.by
	} else {
		in.Code, in.ClosedBy = closeAbnormal, ClosedByNetwork
	}
	return in
}

// opened tells the observer that the connection was accepted (attach).
func (ws *session) notifyOpened() {
	o := ws.owner.currentObserver()
	if o == nil {
		return
	}
	ws.mu.Lock()
	in := ws.infoLocked()
	ws.mu.Unlock()
	in.Code, in.ClosedBy = 0, ""
	o.Opened(in)
}

// notifyClosed tells the observer that an accepted connection ended (the
// session's end).
func (ws *session) notifyClosed() {
	o := ws.owner.currentObserver()
	if o == nil {
		return
	}
	ws.mu.Lock()
	attached := ws.conn != nil
	in := ws.infoLocked()
	ws.mu.Unlock()
	if attached {
		o.Closed(in)
	}
}

// OnEnd has f run once the operation oc ends, when this transport
// dispatched oc and is dispatching it still (an extension's
// InterceptOperation, a resolver); false otherwise, and f is not run. A
// subscription here runs in its connection's context, which outlives it
// (op.run), so the end of that context does not tell when it stopped.
func (t *Transport) OnEnd(oc *graphql.OperationContext, f func()) bool {
	h := &t.streams
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.m[oc]
	if ok {
		d.ends = append(d.ends, f)
		h.m[oc] = d
	}
	return ok
}
