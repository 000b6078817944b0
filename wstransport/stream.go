package wstransport

import (
	"reflect"
	"sync"
)

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
//   - Stop ends the subscription from the transport's side (the client
//     completed it): the source closes the channel, with its last wake-up.
//     The subscription also ends with the context it was made with.
//
// It is an alias of an unnamed interface, so that the source (package
// feed) and the resolvers (package graph) declare the same type without
// importing the transport.
type Stream = interface {
	Notify(wake func(v any))
	Skip() bool
	Stop()
}

// encodings keeps, for a short while, the encoded answer of each value
// delivered to subscriptions sharing an encoding key (Config.Share): the
// feed hands one object to thousands of agents, which ask for the same
// fields of it, and encoding it once for them all instead of once each
// takes gqlgen's execution (and its garbage) out of the fan-out.
//
// An answer is kept only once a second subscription asks for it: a value
// seen once (a replay, read for one subscriber) is noted by its address
// alone, which keeps nothing alive; a kept answer holds its value, so that
// the address cannot be reused while the answer is kept. Both go by
// generations: the current one is kept until it is full, then becomes the
// previous one, and the previous one is dropped. A value's answers are
// therefore shared while its fan-out runs, whatever else is delivered
// meanwhile, within a bounded memory.
type encodings struct {
	mu             sync.Mutex
	kept, keptPrev map[encodingKey][]byte
	keptBytes      int
	seen, seenPrev map[sightingKey]struct{}
	keys           map[string]string // interned encoding keys
}

type encodingKey struct {
	value any // the value's pointer: an entry keeps it alive
	share string
}

type sightingKey struct {
	addr  uintptr // the value's address: a sighting keeps nothing alive
	share string
}

const (
	maxEncodings     = 4096
	maxEncodingBytes = 16 << 20
	maxEncodingSize  = maxEncodingBytes / 4 // larger answers are not kept
	maxSightings     = 16384
	maxKeys          = 1024 // distinct encoding keys interned
)

// intern returns the one copy of the encoding key share that every
// subscription asking the same fields holds (up to maxKeys distinct ones).
func (e *encodings) intern(share string) string {
	if share == "" {
		return ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if k, ok := e.keys[share]; ok {
		return k
	}
	if e.keys == nil {
		e.keys = map[string]string{}
	}
	if len(e.keys) < maxKeys {
		e.keys[share] = share
	}
	return share
}

// get returns the answer kept for value under the key share. Without one,
// it notes the sighting, and keep tells whether the value was seen before
// under this key: the caller's answer is then worth keeping (put).
func (e *encodings) get(value any, share string) (b []byte, keep bool) {
	addr := addressOf(value)
	if addr == 0 {
		return nil, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	k := encodingKey{value, share}
	if b, ok := e.kept[k]; ok {
		return b, false
	}
	if b, ok := e.keptPrev[k]; ok {
		return b, false
	}
	sk := sightingKey{addr, share}
	_, seen := e.seen[sk]
	if _, ok := e.seenPrev[sk]; ok {
		seen = true
	}
	if !seen {
		if e.seen == nil || len(e.seen) >= maxSightings {
			e.seenPrev, e.seen = e.seen, map[sightingKey]struct{}{}
		}
		e.seen[sk] = struct{}{}
	}
	return nil, seen
}

// put keeps the answer b encoded for value under the key share.
func (e *encodings) put(value any, share string, b []byte) {
	if len(b) > maxEncodingSize {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.kept == nil || len(e.kept) >= maxEncodings || e.keptBytes+len(b) > maxEncodingBytes {
		e.keptPrev, e.kept, e.keptBytes = e.kept, map[encodingKey][]byte{}, 0
	}
	e.kept[encodingKey{value, share}] = b
	e.keptBytes += len(b)
}

// addressOf is the address a pointer value points at (0 for anything else:
// never shared).
func addressOf(v any) uintptr {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer {
		return 0
	}
	return rv.Pointer()
}
