package wstransport

import "sync"

// Stream is what a subscription hands the transport, besides the channel
// gqlgen reads its values from: a value, a wake-up, an end.
//
//   - Notify sets wake, which the source calls once after every value it
//     sends on the channel, with that value, and once after it closes the
//     channel, with nil (a source never sends nil). Each call is one
//     receive that will not block, so the transport keeps no goroutine
//     waiting on the channel. wake must not block (the source may hold its
//     lock); calls made before Notify are made by Notify.
//   - Skip takes the next value off the channel unread, for an answer the
//     transport already has encoded (encodings); false when there is none.
//
// It is an alias of an unnamed interface, so that the source (package
// feed) and the resolvers (package graph) declare the same type without
// importing the transport.
type Stream = interface {
	Notify(wake func(v any))
	Skip() bool
}

// encodings keeps, for a short while, the encoded answer of each value
// delivered to subscriptions sharing an encoding key (Config.Share): the
// feed hands one object to thousands of agents, which ask for the same
// fields of it, and encoding it once for them all instead of once each
// takes gqlgen's execution (and its garbage) out of the fan-out. Entries go
// by generations: the current one is kept until it holds maxEncodings
// entries or maxEncodingBytes bytes, then becomes the previous one, and the
// previous one is dropped. A value's answers are therefore shared while
// its fan-out runs, whatever else is delivered meanwhile, within a bounded
// memory.
type encodings struct {
	mu        sync.Mutex
	cur, prev map[encodingKey][]byte
	bytes     int
}

type encodingKey struct {
	value any // the value's pointer: an entry keeps it alive, so it is not reused
	share string
}

const (
	maxEncodings     = 4096
	maxEncodingBytes = 16 << 20
	maxEncodingSize  = maxEncodingBytes / 4 // larger answers are not kept
)

// get returns the answer encoded for value under the key share, or nil.
func (e *encodings) get(value any, share string) []byte {
	k := encodingKey{value, share}
	e.mu.Lock()
	defer e.mu.Unlock()
	if b, ok := e.cur[k]; ok {
		return b
	}
	return e.prev[k]
}

// put keeps the answer b encoded for value under the key share.
func (e *encodings) put(value any, share string, b []byte) {
	if len(b) > maxEncodingSize {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil || len(e.cur) >= maxEncodings || e.bytes+len(b) > maxEncodingBytes {
		e.prev, e.cur, e.bytes = e.cur, map[encodingKey][]byte{}, 0
	}
	e.cur[encodingKey{value, share}] = b
	e.bytes += len(b)
}
