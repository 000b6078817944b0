package api

import (
	"context"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// An idle subscription is mostly goroutine stacks: each websocket keeps a
// goroutine reading (the HTTP handler's), and each subscription one waiting
// for its next event. A goroutine's stack grows to the deepest call it ever
// made and the garbage collector gives it back only by halves, so the deep,
// one-off work of a connection (authenticating connection_init against the
// database, parsing and validating the subscription, running its resolver,
// which replays from the database) is done on short-lived goroutines, whose
// stacks are freed when they end; the long-lived ones stay shallow.

// shallowWebsocket is gqlgen's websocket transport with that executor.
type shallowWebsocket struct{ transport.Websocket }

// Do serves a websocket. The connection is served on a new goroutine, and the HTTP handler returns
// once it is upgraded: the handler's goroutine (net/http's connection
// goroutine, grown by reading the request and the middleware) ends, and
// with it the HTTP server's per-request state; the hijacked connection and
// its buffers live on with the websocket.
func (t shallowWebsocket) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ws, ok := r.Context().Value(sessionKey{}).(*wsSession)
	if !ok {
		t.Websocket.Do(w, r, shallowExecutor{exec})
		return
	}
	ended := make(chan struct{})
	go func() {
		defer ws.end()
		defer close(ended)
		t.Websocket.Do(w, r, shallowExecutor{exec})
	}()
	select {
	case <-ws.accepted:
		ws.detached.Store(true)
	case <-ended: // not upgraded: the response is written
	}
}

type shallowExecutor struct{ graphql.GraphExecutor }

func (e shallowExecutor) CreateOperationContext(ctx context.Context, params *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	var (
		rc   *graphql.OperationContext
		errs gqlerror.List
	)
	onOwnStack(func() { rc, errs = e.GraphExecutor.CreateOperationContext(ctx, params) })
	return rc, errs
}

func (e shallowExecutor) DispatchOperation(ctx context.Context, rc *graphql.OperationContext) (graphql.ResponseHandler, context.Context) {
	var (
		h    graphql.ResponseHandler
		hctx context.Context
	)
	onOwnStack(func() { h, hctx = e.GraphExecutor.DispatchOperation(ctx, rc) })
	return h, hctx
}

// onOwnStack runs f on a new goroutine and waits for it; a panic in f is
// raised again on the caller's, where the transport recovers it.
func onOwnStack(f func()) {
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		f()
	}()
	if p := <-done; p != nil {
		panic(p)
	}
}
