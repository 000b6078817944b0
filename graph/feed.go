package graph

import (
	"context"

	"github.com/google/uuid"

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

// feedAgent is the agent whose feed a subscription follows: the calling
// agent (agentId, if given, must be itself), or for admins the agentId
// argument, which they must give.
func feedAgent(scope models.Scope, agentID *uuid.UUID) (uuid.UUID, error) {
	switch scope.Role {
	case models.RoleAgent:
		if agentID != nil && *agentID != scope.AgentID {
			return uuid.Nil, models.NotFound("agent")
		}
		return scope.AgentID, nil
	case models.RoleAdmin:
		if agentID == nil {
			return uuid.Nil, models.Invalid("agentId", "agentId is required for admins")
		}
		return *agentID, nil
	}
	return uuid.Nil, models.Forbidden("only agents and admins follow an agent's feed")
}

// flag reads an optional Boolean argument.
func flag(b *bool) bool { return b != nil && *b }
