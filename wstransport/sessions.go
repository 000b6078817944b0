package wstransport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
	// the most websockets allowed open on this server: 1013 (try again
	// later), which graphql-ws clients retry with back-off, as an agent
	// reconnecting before its old, dead connection is noticed must.
	CloseTooManyWebsockets = 1013
)

// recheckTimeout bounds one check of open connections' keys.
const recheckTimeout = 5 * time.Second

// Keys tells which open connections' keys no longer authenticate the
// principal they were opened with: rotated, or the principal deleted or
// deactivated (auth.Authenticator.Revoked). It reads them all at once.
type Keys interface {
	Revoked(ctx context.Context, creds []auth.Credential) ([]bool, error)
}

// Sessions tracks the open websocket connections and who is behind each, so
// that revoking a principal's key closes its connections at once and
// shutdown closes them all with a code clients reconnect on.
type Sessions struct {
	mu       sync.Mutex
	sessions map[*session]struct{}
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

	keys   Keys // re-checks connections' keys; nil: never
	logger *slog.Logger

	observer      Observer      // told of each connection's start and end (observe.go)
	lastID        atomic.Uint64 // connections' ids (Info.ID)
	refusedPerKey atomic.Uint64 // connection_init refused for the per-key cap
}

// NewSessions returns an empty registry.
func NewSessions() *Sessions {
	return &Sessions{sessions: map[*session]struct{}{}, perKey: map[principal]int{}, logger: slog.Default()}
}

// SetMaxPerKey bounds the websockets of one key (0 or less: no bound).
func (s *Sessions) SetMaxPerKey(n int) {
	s.mu.Lock()
	s.maxPerKey = max(n, 0)
	s.mu.Unlock()
}

// SetKeys sets what re-checks the keys of open connections (Recheck,
// RecheckAll), and the logger its failures go to.
func (s *Sessions) SetKeys(k Keys, logger *slog.Logger) {
	s.mu.Lock()
	s.keys = k
	if logger != nil {
		s.logger = logger
	}
	s.mu.Unlock()
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

// session is one open websocket as the registry sees it.
type session struct {
	owner     *Sessions
	counted   principal // in owner.perKey when countedOK (under owner.mu)
	countedOK bool
	cancel    context.CancelFunc
	slot      int    // keep-alive slot, fixed at registration
	end       func() // forgets the session, cancels it, tells the observer; idempotent
	id        uint64 // the observer's (Info)
	remote    string
	opened    time.Time

	mu     sync.Mutex
	conn   *conn // once accepted
	cred   auth.Credential
	authed bool
	live   bool // acknowledged (connection_ack sent): keep-alives may follow
	code   int  // close code to use instead of 1000 when we end it
	reason string
	closed closeNote // how it ended, for the observer
}

// open registers a session for a websocket upgrade request, or answers 503
// when the server is shutting down (nil). The session's context carries
// what authentication put in the request's (the principal of an
// Authorization header), but not its end: the connection outlives the
// HTTP handler.
func (s *Sessions) open(w http.ResponseWriter, r *http.Request) (*session, context.Context) {
	ctx, cancel := context.WithCancel(auth.Detached(r.Context()))
	ws := &session{owner: s, cancel: cancel, id: s.lastID.Add(1), remote: r.RemoteAddr, opened: time.Now()}
	ws.end = sync.OnceFunc(func() {
		s.mu.Lock()
		delete(s.sessions, ws)
		if p := ws.counted; ws.countedOK {
			if s.perKey[p]--; s.perKey[p] <= 0 {
				delete(s.perKey, p)
			}
		}
		s.mu.Unlock()
		cancel()
		ws.notifyClosed()
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		cancel()
		w.Header().Set("Retry-After", "1")
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return nil, nil
	}
	s.register(ws)
	return ws, ctx
}

// admit records who is behind the connection (ctx is what connection_init
// produced), unless that principal already has the most websockets allowed
// open here.
func (ws *session) admit(ctx context.Context) error {
	o := ws.owner
	cred, ok := auth.CredentialOf(ctx)
	if ok {
		p := principalOf(cred.Scope)
		o.mu.Lock()
		if _, open := o.sessions[ws]; !open { // ended meanwhile: nothing to count
			o.mu.Unlock()
			return errors.New("the connection has ended")
		}
		if o.maxPerKey > 0 && o.perKey[p] >= o.maxPerKey {
			o.mu.Unlock()
			o.refusedPerKey.Add(1)
			return fmt.Errorf("too many websockets for this key (at most %d at once)", o.maxPerKey)
		}
		o.perKey[p]++
		ws.counted, ws.countedOK = p, true
		o.mu.Unlock()
	}
	ws.mu.Lock()
	ws.cred, ws.authed = cred, ok
	ws.mu.Unlock()
	return nil
}

// acknowledged notes the connection_ack sent: keep-alives may follow.
func (ws *session) acknowledged() {
	ws.mu.Lock()
	ws.live = true
	ws.mu.Unlock()
}

// close ends the session with code (the first one given): its operations
// see their context end, and its connection closes with the code. A
// connection attached after this closes as it starts (conn.start).
func (ws *session) close(code int, reason string) {
	ws.mu.Lock()
	if ws.code == 0 {
		ws.code, ws.reason = code, reason
	}
	ws.mu.Unlock()
	ws.cancel() // before conn is read: see conn.start
	ws.mu.Lock()
	c := ws.conn
	ws.mu.Unlock()
	if c != nil {
		c.closeWith(ws.closeCode())
	}
}

// closeCode is the code the session was closed with.
func (ws *session) closeCode() (int, string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.code, ws.reason
}

const revokedReason = "unauthenticated: the API key was rotated or its owner removed"

// Revoke closes every websocket opened with the given principal's key.
// The feed calls it when it sees a key rotated or a principal deleted or
// deactivated.
func (s *Sessions) Revoke(scope models.Scope) {
	for _, ws := range s.matching(func(c auth.Credential) bool { return samePrincipal(c.Scope, scope) }) {
		ws.close(CloseRevoked, revokedReason)
	}
}

// Recheck re-authenticates the open websockets of the given principal and
// closes (4401) those whose key no longer works. The feed calls it for every
// notification that a principal's key, status or deletion changed, on every
// replica, so a rotated or deleted key loses its connections at once even
// when they carry no subscription. It does not block the caller.
func (s *Sessions) Recheck(scope models.Scope) {
	s.recheck(s.matching(func(c auth.Credential) bool { return samePrincipal(c.Scope, scope) }))
}

// RecheckAll re-authenticates every open websocket, in one statement per
// batch of keys, and closes (4401) those whose key no longer works. The feed
// calls it whenever its listener has (re)connected: a change notified while
// it was not listening is found here. It does not block the caller.
func (s *Sessions) RecheckAll() {
	s.recheck(s.matching(func(auth.Credential) bool { return true }))
}

// recheckBatch is the most keys one check reads.
const recheckBatch = 1000

func (s *Sessions) recheck(targets []*session) {
	s.mu.Lock()
	keys, logger := s.keys, s.logger
	s.mu.Unlock()
	if keys == nil || len(targets) == 0 {
		return
	}
	go func() {
		for start := 0; start < len(targets); start += recheckBatch {
			batch := targets[start:min(start+recheckBatch, len(targets))]
			creds := make([]auth.Credential, len(batch))
			for i, ws := range batch {
				ws.mu.Lock()
				creds[i] = ws.cred
				ws.mu.Unlock()
			}
			ctx, cancel := context.WithTimeout(context.Background(), recheckTimeout)
			revoked, err := keys.Revoked(ctx, creds)
			cancel()
			if err != nil {
				logger.Warn("websockets: keys not re-checked", "connections", len(batch), "err", err)
				continue
			}
			for i, ws := range batch {
				if revoked[i] {
					ws.close(CloseRevoked, revokedReason)
				}
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

// matching is the sessions whose credential keep accepts (authenticated
// ones only), or every session when keep is nil.
func (s *Sessions) matching(keep func(auth.Credential) bool) []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*session
	for ws := range s.sessions {
		ws.mu.Lock()
		ok := keep == nil || (ws.authed && keep(ws.cred))
		ws.mu.Unlock()
		if ok {
			out = append(out, ws)
		}
	}
	return out
}

func samePrincipal(a, b models.Scope) bool { return principalOf(a) == principalOf(b) }

// attach gives the session its accepted connection, and tells the observer.
func (ws *session) attach(c *conn) {
	ws.mu.Lock()
	ws.conn = c
	ws.mu.Unlock()
	ws.notifyOpened()
}
