package wstransport

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/brokkr/brokkr/models"
	"github.com/brokkr/brokkr/reqtext"
)

// op is one operation (subscription, or a query or mutation) of a
// connection.
type op struct {
	c      *conn
	id     string
	sendMu sync.Mutex // held while a result is written (see send)

	mu       sync.Mutex
	cancel   context.CancelFunc      // a query's or mutation's: ends its work when the op ends
	ctx      context.Context         // the operation's, once dispatched
	next     graphql.ResponseHandler // set once the operation waits for wake-ups
	stream   Stream                  // its source's, once it waits for wake-ups
	share    string                  // its encoding key (Config.Share; "": its own)
	ready    []any                   // values ready on the stream's channel, in order (nil: its end)
	draining bool                    // a goroutine is sending
	done     bool
	stopped  bool     // the client stopped it
	ends     []func() // run at its end (Transport.OnEnd)
}

// startOp registers the operation id and starts it on its own goroutine.
func (c *conn) startOp(id string, payload json.RawMessage) bool {
	c.mu.Lock()
	if !c.acked {
		c.mu.Unlock()
		c.closeWith(closeUnauthorized, "unauthorized: connection_init first")
		return false
	}
	if id == "" {
		c.mu.Unlock()
		c.closeWith(closeBadRequest, "invalid message: an operation needs an id")
		return false
	}
	if c.op(id) != nil {
		c.mu.Unlock()
		c.closeWith(closeDuplicateID, fmt.Sprintf("subscriber for %s already exists", id))
		return false
	}
	if len(c.ops) >= MaxOperations {
		ctx := c.opCtx
		c.mu.Unlock()
		e := c.present(ctx, &models.Error{Kind: models.KindRateLimited, RetryAfter: 1,
			Message: fmt.Sprintf("too many operations on one connection (at most %d at once)", MaxOperations)})
		_ = c.writeMessage("error", id, mustJSON(gqlerror.List{e}))
		return true
	}
	ctx := c.opCtx
	o := &op{c: c, id: id}
	c.ops = append(c.ops, o)
	c.mu.Unlock()
	go o.run(ctx, payload)
	return true
}

// op is the running operation id (nil: none); c.mu is held.
func (c *conn) op(id string) *op {
	for _, o := range c.ops {
		if o.id == id {
			return o
		}
	}
	return nil
}

// stopOp ends an operation at the client's request.
func (c *conn) stopOp(id string) {
	c.mu.Lock()
	o := c.op(id)
	c.mu.Unlock()
	if o == nil {
		return
	}
	o.mu.Lock()
	o.stopped = true
	o.mu.Unlock()
	// The id is free again at once. subscriptions-transport-ws clients
	// wait for complete after stop; graphql-transport-ws ones do not.
	o.finish(c.legacy)
}

// run parses, validates and dispatches the operation. A subscription whose
// source hands over a Stream then waits without a goroutine; anything else
// (queries, mutations, a failed subscription) is answered here.
//
// A subscription runs in the connection's context, and ends when the
// connection does or, before, when the op ends (Stream.Stop): it keeps no
// context of its own, which an idle subscription would pay for (a
// cancelable context, the map of its children, its Done channel). Anything
// else gets one, which the op's end cancels.
func (o *op) run(ctx context.Context, payload json.RawMessage) {
	c := o.c
	defer o.recover(ctx)
	start := graphql.Now()
	ctx = graphql.StartOperationTrace(ctx)
	var params graphql.RawParams
	if err := reqtext.Decode(payload, &params); err != nil {
		o.fail(gqlerror.List{c.present(ctx, models.Invalid("", "invalid JSON in the operation payload"))})
		return
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	rc, errs := c.exec.CreateOperationContext(ctx, &params)
	if errs != nil {
		resp := c.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		o.fail(resp.Errors)
		return
	}
	subscription := rc.Operation != nil && rc.Operation.Operation == ast.Subscription
	if !subscription && !o.cancelable(&ctx) {
		return
	}
	next, ctx, stream := o.dispatch(ctx, rc)
	if stream == nil {
		if !subscription || o.cancelable(&ctx) { // a subscription without a stream blocks in next
			o.answer(ctx, next)
		}
		return
	}
	o.waitFor(ctx, next, stream, rc)
}

// dispatch runs the operation's extensions and, for a subscription, its
// resolver, and collects what they handed over: its Stream (nil: none), and
// what is to run at the op's end, which the op adopts even if dispatching
// panics.
func (o *op) dispatch(ctx context.Context, rc *graphql.OperationContext) (next graphql.ResponseHandler, _ context.Context, stream Stream) {
	h := &o.c.t.streams
	h.expect(rc)
	defer func() {
		d := h.collect(rc)
		stream = d.stream
		o.adopt(d.ends)
	}()
	next, ctx = o.c.exec.DispatchOperation(ctx, rc)
	return next, ctx, nil
}

// adopt has ends run at the op's end (at once if it has ended).
func (o *op) adopt(ends []func()) {
	o.mu.Lock()
	done := o.done
	if !done {
		o.ends = append(o.ends, ends...)
	}
	o.mu.Unlock()
	if done {
		for _, f := range ends {
			f()
		}
	}
}

// cancelable makes *ctx one that the op's end cancels; false when the op
// has ended already.
func (o *op) cancelable(ctx *context.Context) bool {
	cctx, cancel := context.WithCancel(*ctx)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		cancel()
		return false
	}
	*ctx, o.cancel = cctx, cancel
	return true
}

// waitFor makes the subscription wait for its stream's wake-ups.
func (o *op) waitFor(ctx context.Context, next graphql.ResponseHandler, stream Stream, rc *graphql.OperationContext) {
	share := ""
	if o.c.t.cfg.Share != nil {
		share = o.c.t.shared.intern(o.c.t.cfg.Share(rc))
	}
	o.mu.Lock()
	if o.done { // stopped while it was being made
		o.mu.Unlock()
		stream.Stop()
		return
	}
	o.ctx, o.next, o.stream, o.share = ctx, next, stream, share
	o.mu.Unlock()
	stream.Notify(o.wake) // wakes for what is ready already
}

// answer sends every response of an operation that does not wait for
// wake-ups (a query, a mutation, a subscription that failed), then ends it.
func (o *op) answer(ctx context.Context, next graphql.ResponseHandler) {
	for {
		resp := next(ctx)
		if resp == nil {
			break
		}
		b, err := json.Marshal(resp)
		if err != nil || o.send(b) != nil {
			o.finish(false)
			return
		}
	}
	o.finish(true)
}

// wake is the subscription's wake-up (Stream.Notify): one more value v (or,
// nil, the channel's close) is ready. It must not block: the source may
// hold its lock.
func (o *op) wake(v any) {
	o.mu.Lock()
	if o.done {
		o.mu.Unlock()
		return
	}
	o.ready = append(o.ready, v)
	go1 := !o.draining && !o.done
	if go1 {
		o.draining = true
	}
	o.mu.Unlock()
	if go1 {
		o.c.t.drainers.submit(o)
	}
}

// drain sends what is ready, one response per ready value, then returns
// (on a drainer's goroutine): the subscription owns no goroutine while it
// waits.
func (o *op) drain() {
	defer o.recover(o.c.ctx)
	for {
		o.mu.Lock()
		if o.done || len(o.ready) == 0 {
			o.draining = false
			o.ready = nil
			o.mu.Unlock()
			return
		}
		v := o.ready[0]
		o.ready[0] = nil
		o.ready = o.ready[1:]
		o.mu.Unlock()
		if !o.deliver(v) {
			return
		}
	}
}

// deliver sends the answer to the next value, v, ready on the stream
// (nil: the stream ended); false once the operation has ended. An answer
// another subscription of the same key already encoded for v is sent as it
// is, and the value taken off the channel unread (Stream.Skip).
func (o *op) deliver(v any) bool {
	keep := false
	if v != nil && o.share != "" {
		var b []byte
		if b, keep = o.c.t.shared.get(v, o.share); b != nil {
			if !o.stream.Skip() { // cannot happen: v was sent before its wake-up
				o.finish(true)
				return false
			}
			return o.sent(o.send(b))
		}
	}
	resp := o.next(o.ctx) // does not block: a value, or the close, is ready
	if resp == nil {
		o.finish(true)
		return false
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return o.sent(err)
	}
	if keep && len(resp.Errors) == 0 && len(resp.Extensions) == 0 {
		o.c.t.shared.put(v, o.share, b)
	}
	return o.sent(o.send(b))
}

// sent ends the operation when its answer could not be sent (the
// connection is going): false then.
func (o *op) sent(err error) bool {
	if err != nil {
		o.finish(false)
		return false
	}
	return true
}

// send writes one encoded result, next (data in the legacy protocol),
// unless the operation has ended: a result must not follow the end, where
// the client may already have reused the id for a new operation. end waits
// for a send in progress (sendMu).
func (o *op) send(payload []byte) error {
	o.sendMu.Lock()
	defer o.sendMu.Unlock()
	o.mu.Lock()
	done := o.done
	o.mu.Unlock()
	if done {
		return nil
	}
	typ := "next"
	if o.c.legacy {
		typ = "data"
	}
	return o.c.writeMessage(typ, o.id, payload)
}

// fail answers an operation that could not run (a parse or validation
// error, a panic) with an error message, and forgets it.
func (o *op) fail(errs gqlerror.List) {
	if !o.end() {
		return
	}
	_ = o.c.writeMessage("error", o.id, mustJSON(errs))
	if o.c.legacy {
		_ = o.c.writeMessage("complete", o.id, nil)
	}
}

// finish ends the operation, telling the client (complete) unless the
// client stopped it or the connection is going.
func (o *op) finish(tell bool) {
	if !o.end() {
		return
	}
	o.mu.Lock()
	stopped := o.stopped
	o.mu.Unlock()
	if tell && (!stopped || o.c.legacy) && o.c.ctx.Err() == nil { // not after a client's complete
		_ = o.c.writeMessage("complete", o.id, nil)
	}
}

// end marks the operation done and forgets it; false if it already was.
func (o *op) end() bool {
	o.sendMu.Lock() // after a result being written, before any other
	o.mu.Lock()
	done := o.done
	o.done = true
	o.ready = nil
	cancel, stream, ends := o.cancel, o.stream, o.ends
	o.ends = nil
	o.mu.Unlock()
	o.sendMu.Unlock()
	if done {
		return false
	}
	if cancel != nil {
		cancel()
	}
	if stream != nil {
		stream.Stop()
	}
	for _, f := range ends {
		f()
	}
	c := o.c
	c.mu.Lock()
	if i := slices.Index(c.ops, o); i >= 0 {
		c.ops = slices.Delete(c.ops, i, i+1)
	}
	c.mu.Unlock()
	return true
}

// recover answers an operation whose own goroutine panicked outside the
// executor (which recovers resolvers' panics itself) with an internal
// error: the panic is logged, never shown.
func (o *op) recover(ctx context.Context) {
	if r := recover(); r != nil {
		o.c.t.cfg.Logger.ErrorContext(ctx, "wstransport: operation panicked", "panic", r, "stack", string(debug.Stack()))
		err := &models.Error{Kind: models.KindInternal, Message: "internal error", Err: fmt.Errorf("panic: %v", r)}
		o.fail(gqlerror.List{o.c.present(ctx, err)})
	}
}
