package feed

import (
	"context"
	"sync/atomic"
)

// A Waker tells whoever consumes a subscription's channel when there is
// something to receive on it, so that the consumer need not keep a
// goroutine blocked on the channel for the subscription's whole life: an
// idle subscription then owns no goroutine at all (the websocket
// transport's design, api/wstransport.go).
//
// The consumer puts a Waker in the context it subscribes with. The hub takes
// it when it creates the subscription's channel, and from then on calls it
// once after every value it sends on that channel and once after it closes
// the channel: each call is one receive that will not block. A consumer
// whose Waker was not taken (Attached false: the resolver failed, or its
// source does not wake) must block on the channel as usual.
type Waker struct {
	fn       func()
	attached atomic.Bool
}

// NewWaker returns a Waker that calls fn. fn must not block: the hub calls
// it with its lock held.
func NewWaker(fn func()) *Waker { return &Waker{fn: fn} }

// Attached reports whether a subscription took w.
func (w *Waker) Attached() bool { return w.attached.Load() }

type wakerKey struct{}

// WithWaker returns ctx carrying w for the subscription made with it.
func WithWaker(ctx context.Context, w *Waker) context.Context {
	return context.WithValue(ctx, wakerKey{}, w)
}

// wakerFor returns the Waker of ctx, or nil. The subscription made with
// ctx calls it (wake, nil-safe) from the start and marks it taken (take)
// once it is made.
func wakerFor(ctx context.Context) *Waker {
	w, _ := ctx.Value(wakerKey{}).(*Waker)
	return w
}

// wake tells the consumer there is one more receive that will not block.
func (w *Waker) wake() {
	if w != nil {
		w.fn()
	}
}

// take marks w taken by a subscription that was made.
func (w *Waker) take() {
	if w != nil {
		w.attached.Store(true)
	}
}
