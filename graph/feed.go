package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/brokkr/brokkr/models"
)

// errNoFeed answers subscriptions on a server assembled without a feed.
var errNoFeed = &models.Error{Kind: models.KindInternal, Message: "subscriptions are not available on this server"}

// feed returns the subscription hub, or an error when there is none.
func (r *Resolver) feed() (Feed, error) {
	if r.Feed == nil {
		return nil, errNoFeed
	}
	return r.Feed, nil
}

// subscribed hands a subscription's stream to the transport that dispatched
// the operation (Resolver.Streams) and returns its channel.
func subscribed[T any](ctx context.Context, r *Resolver, ch <-chan T, s Stream, err error) (<-chan T, error) {
	if err != nil {
		return nil, err
	}
	if r.Streams != nil {
		r.Streams(graphql.GetOperationContext(ctx), s)
	}
	return ch, nil
}

// flag reads an optional Boolean argument.
func flag(b *bool) bool { return b != nil && *b }
