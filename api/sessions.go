package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/auth"
	"github.com/brokkr/brokkr/models"
)

// Websocket close codes chosen by the broker.
const (
	// CloseServiceRestart ends websockets at shutdown: clients reconnect
	// (to this replica once restarted, or another) and resume with `after`.
	CloseServiceRestart = 1012
	// CloseRevoked ends the websockets of a principal whose key was rotated
	// or who was deleted (DESIGN §4): reconnecting with the old key is futile.
	CloseRevoked = auth.CloseUnauthenticated
	// CloseTooManyWebsockets refuses a connection_init whose key already has
	// Config.MaxWebsocketsPerKey websockets open on this server: 1013 (try
	// again later), which graphql-ws clients retry with back-off, as an
	// agent reconnecting before its old, dead connection is noticed must.
	CloseTooManyWebsockets = 1013
)

// Sessions tracks the open websocket connections and who is behind each, so
// that revoking a principal's key closes its connections at once and
// shutdown closes them all with a code clients reconnect on.
type Sessions struct {
	mu       sync.Mutex
	sessions map[*wsSession]struct{}
	closing  bool

	// maxPerKey bounds the websockets one principal (one key) has open
	// here (0: no bound); perKey counts them, from connection_init to
	// the end of the connection.
	maxPerKey int
	perKey    map[principal]int

	// Keep-alive (keepalive.go): one goroutine for all connections, running
	// while any is open.
	keepAlive time.Duration
	pinging   bool
	nextSlot  int

	// recheck re-authenticates a connection's key (auth.Authenticator.Recheck
	// on the context its connection_init produced); set by New, under mu.
	recheck func(context.Context) error

	// The access log's hook (setObserver): told of each websocket accepted
	// and of its end, outside every lock.
	opened, closed func(websocketInfo)
	lastID         atomic.Uint64 // websocket ids, for the log
	refusedPerKey  atomic.Uint64 // connection_init refused for the per-key cap
}

// websocketInfo is what the access log says of a websocket.
type websocketInfo struct {
	id          uint64
	remote      string
	subprotocol string
	opened      time.Time
	scope       models.Scope
	authed      bool
	code        int // the close code (closed only)
	reason      string
	closedBy    string // server, client, or network: no close frame (dropped, or cut off unread)
}

// setObserver sets the access log's hook; api.New calls it before serving.
func (s *Sessions) setObserver(opened, closed func(websocketInfo)) {
	s.mu.Lock()
	s.opened, s.closed = opened, closed
	s.mu.Unlock()
}

// refusals is the number of connection_init refused for the per-key cap.
func (s *Sessions) refusals() uint64 { return s.refusedPerKey.Load() }

// NewSessions returns an empty registry.
func NewSessions() *Sessions {
	return &Sessions{sessions: map[*wsSession]struct{}{}, perKey: map[principal]int{}}
}

// principal identifies a key's owner: a generator, an agent or the admin.
type principal struct {
	role models.Role
	id   uuid.UUID
}

func principalOf(scope models.Scope) principal {
	switch scope.Role {
	case models.RoleGenerator:
		return principal{scope.Role, scope.GeneratorID}
	case models.RoleAgent:
		return principal{scope.Role, scope.AgentID}
	}
	return principal{role: scope.Role}
}

type wsSession struct {
	owner    *Sessions
	counted  *principal // in owner.perKey (under owner.mu)
	cancel   context.CancelFunc
	slot     int         // keep-alive slot, fixed at registration
	detached atomic.Bool // the connection is served beyond the HTTP handler
	end      func()      // forgets the session and cancels it; idempotent

	mu      sync.Mutex
	conn    *wsConn // once accepted
	scope   models.Scope
	authed  bool
	authCtx context.Context // what connection_init produced: carries the key's hash
	live    bool            // acknowledged (connection_ack sent): keep-alives may follow
	code    int             // close code to use instead of 1000 when we end it
	reason  string

	info      websocketInfo // for the access log
	closeSeen bool          // info has its close code
}

// noteClose records how the connection ended, for the access log: the
// first close seen wins (the server's, or the client's close frame, or the
// connection's end without one: 1006, by the network).
func (s *wsSession) noteClose(code int, reason, by string) {
	s.mu.Lock()
	if !s.closeSeen {
		s.closeSeen = true
		s.info.code, s.info.reason, s.info.closedBy = code, reason, by
	}
	s.mu.Unlock()
}

func (s *wsSession) attach(c *wsConn) {
	s.mu.Lock()
	s.conn = c
	s.info.subprotocol = c.Subprotocol()
	s.info.scope, s.info.authed = auth.ForContext(c.ctx) // a key sent as a header
	info := s.info
	s.mu.Unlock()
	s.owner.mu.Lock()
	opened := s.owner.opened
	s.owner.mu.Unlock()
	if opened != nil {
		opened(info)
	}
}

// ended tells the access log that an accepted connection ended.
func (s *wsSession) ended() {
	s.mu.Lock()
	attached := s.conn != nil
	info := s.info
	if s.authed { // connection_init's key (else a header's, if any)
		info.scope, info.authed = s.scope, true
	}
	s.mu.Unlock()
	s.owner.mu.Lock()
	closed := s.owner.closed
	s.owner.mu.Unlock()
	if attached && closed != nil {
		closed(info)
	}
}

// authenticated records who is behind the connection: ctx is what
// connection_init produced (auth.Authenticator.WebsocketInit).
func (s *wsSession) authenticated(ctx context.Context) {
	scope, ok := auth.ForContext(ctx)
	s.mu.Lock()
	s.scope, s.authed, s.authCtx = scope, ok, ctx
	s.mu.Unlock()
}

// admit records who is behind the connection (authenticated), unless that
// principal already has the most websockets allowed open here.
func (s *wsSession) admit(ctx context.Context) error {
	o := s.owner
	if scope, ok := auth.ForContext(ctx); ok {
		p := principalOf(scope)
		o.mu.Lock()
		if _, open := o.sessions[s]; !open { // ended meanwhile: nothing to count
			o.mu.Unlock()
			return errors.New("the connection has ended")
		}
		if o.maxPerKey > 0 && o.perKey[p] >= o.maxPerKey {
			o.mu.Unlock()
			o.refusedPerKey.Add(1)
			return fmt.Errorf("too many websockets for this key (at most %d at once)", o.maxPerKey)
		}
		o.perKey[p]++
		s.counted = &p
		o.mu.Unlock()
	}
	s.authenticated(ctx)
	return nil
}

// acknowledged notes the connection_ack sent: keep-alives may follow.
func (s *wsSession) acknowledged() {
	s.mu.Lock()
	s.live = true
	s.mu.Unlock()
}

func (s *wsSession) close(code int, reason string) {
	s.mu.Lock()
	if s.code == 0 {
		s.code, s.reason = code, reason
	}
	s.mu.Unlock()
	s.cancel()
}

// closeCode maps the close of a cancelled connection (1000 "terminated")
// to the code the broker chose for it.
func (s *wsSession) closeCode(code int, reason string) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.code != 0 && code == closeNormal {
		return s.code, s.reason
	}
	return code, reason
}

// Revoke closes every websocket opened with the given principal's key.
// The feed calls it when it sees a key rotated or a principal deleted or
// deactivated.
func (s *Sessions) Revoke(scope models.Scope) {
	for _, ws := range s.matching(func(sc models.Scope) bool { return samePrincipal(sc, scope) }) {
		ws.close(CloseRevoked, "unauthenticated: the API key was rotated or its owner removed")
	}
}

// setMaxPerKey bounds the websockets of one key (0 or less: no bound).
func (s *Sessions) setMaxPerKey(n int) {
	s.mu.Lock()
	s.maxPerKey = max(n, 0)
	s.mu.Unlock()
}

func (s *Sessions) setRecheck(f func(context.Context) error) {
	s.mu.Lock()
	s.recheck = f
	s.mu.Unlock()
}

// Recheck re-authenticates the open websockets of the given principal and
// closes (4401) those whose key no longer works. The feed calls it for every
// notification that a principal's key, status or deletion changed, on every
// replica, so a rotated or deleted key loses its connections at once even
// when they carry no subscription. It does not block the caller.
func (s *Sessions) Recheck(scope models.Scope) {
	s.mu.Lock()
	recheck := s.recheck
	s.mu.Unlock()
	if recheck == nil {
		return
	}
	targets := s.matching(func(sc models.Scope) bool { return samePrincipal(sc, scope) })
	if len(targets) == 0 {
		return
	}
	go func() {
		for _, ws := range targets {
			ws.mu.Lock()
			actx := ws.authCtx
			ws.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(actx), 5*time.Second)
			err := recheck(ctx)
			cancel()
			if models.ErrorKind(err) == models.KindUnauthenticated {
				ws.close(CloseRevoked, "unauthenticated: the API key was rotated or its owner removed")
			}
		}
	}()
}

// CloseAll closes every websocket with CloseServiceRestart and refuses new
// ones; it is the websocket part of a graceful shutdown.
func (s *Sessions) CloseAll() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	for _, ws := range s.matching(nil) {
		ws.close(CloseServiceRestart, "server shutting down; reconnect and resume")
	}
}

// Count is the number of open websocket connections.
func (s *Sessions) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Sessions) matching(keep func(models.Scope) bool) []*wsSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*wsSession
	for ws := range s.sessions {
		ws.mu.Lock()
		ok := keep == nil || (ws.authed && keep(ws.scope))
		ws.mu.Unlock()
		if ok {
			out = append(out, ws)
		}
	}
	return out
}

func samePrincipal(a, b models.Scope) bool { return principalOf(a) == principalOf(b) }

type sessionKey struct{}

// middleware gives each websocket request a session whose cancellation ends
// the connection, and forgets it when the connection ends. Once upgraded,
// the connection outlives the HTTP handler (see wsTransport.Do), so
// the session's context does not end with the request's.
func (s *Sessions) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
		ws := &wsSession{owner: s, cancel: cancel, info: websocketInfo{id: s.lastID.Add(1), remote: r.RemoteAddr, opened: time.Now()}}
		ws.end = sync.OnceFunc(func() {
			s.mu.Lock()
			delete(s.sessions, ws)
			if p := ws.counted; p != nil {
				if s.perKey[*p]--; s.perKey[*p] <= 0 {
					delete(s.perKey, *p)
				}
			}
			s.mu.Unlock()
			cancel()
			ws.ended()
		})
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			cancel()
			w.Header().Set("Retry-After", "1")
			http.Error(w, "server shutting down", http.StatusServiceUnavailable)
			return
		}
		s.register(ws)
		s.mu.Unlock()
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, sessionKey{}, ws)))
		if !ws.detached.Load() {
			ws.end()
		}
	})
}
