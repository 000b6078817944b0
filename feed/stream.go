package feed

import (
	"sync"
	"sync/atomic"
)

// Stream is what each subscription hands whoever delivers its values,
// besides its channel: a wake-up after every value sent on the channel
// (with the value) and after its close (with nil), so that the consumer
// need not keep a goroutine blocked on the channel for the subscription's
// whole life; Skip, which takes the next value off the channel unread; and
// Stop, which ends the subscription as the end of the context it was made
// with does. The same type as wstransport.Stream and graph.Stream (an
// alias of one unnamed interface), where the contract is spelled out.
type Stream = interface {
	Notify(wake func(v any))
	Skip() bool
	Stop()
}

// out is a subscription's channel and its wake-ups (its Stream). The hub
// calls wake after every send on ch and after closing it, with its lock
// held; until the consumer calls Notify, wake-ups are kept (early) and
// Notify makes them.
type out[T any] struct {
	ch    chan T
	fn    atomic.Pointer[func(any)]
	mu    sync.Mutex // guards early, and the switch from keeping to calling
	early []any
	end   func() // ends the subscription (Stop), as its context's end does
}

func newOut[T any](size int) out[T] { return out[T]{ch: make(chan T, size)} }

// Notify implements Stream.
func (o *out[T]) Notify(wake func(v any)) {
	o.mu.Lock()
	early := o.early
	o.early = nil
	o.fn.Store(&wake)
	o.mu.Unlock()
	for _, v := range early {
		wake(v)
	}
}

// Stop implements Stream.
func (o *out[T]) Stop() {
	if o.end != nil {
		o.end()
	}
}

// Skip implements Stream.
func (o *out[T]) Skip() bool {
	select {
	case _, ok := <-o.ch:
		return ok
	default:
		return false
	}
}

// wake tells the consumer that v was sent on ch (nil: ch was closed).
func (o *out[T]) wake(v any) {
	if fn := o.fn.Load(); fn != nil {
		(*fn)(v)
		return
	}
	o.mu.Lock()
	if fn := o.fn.Load(); fn != nil {
		o.mu.Unlock()
		(*fn)(v)
		return
	}
	if len(o.early) <= cap(o.ch) { // more: a consumer reads ch without Notify
		o.early = append(o.early, v)
	}
	o.mu.Unlock()
}

// send puts v on ch if there is room, and wakes the consumer.
func (o *out[T]) send(v T) bool {
	select {
	case o.ch <- v:
		o.wake(v)
		return true
	default:
		return false
	}
}

// close closes ch and wakes the consumer a last time.
func (o *out[T]) close() {
	close(o.ch)
	o.wake(nil)
}
