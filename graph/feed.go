package graph

import (
	"context"

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

// published wakes the subscription hub after a committed mutation that may
// have created deployment objects or changed targets or agents.
func (r *Resolver) published(ctx context.Context) {
	if r.Feed != nil {
		r.Feed.Published(ctx)
	}
}

// flag reads an optional Boolean argument.
func flag(b *bool) bool { return b != nil && *b }
