package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// FeedObject is one deployment object of an agent's feed.
type FeedObject = AgentFeedAgentDeploymentObjectsDeploymentObject

// Event is one agent event, as the CLI shows it.
type Event = EventFields

// FollowAgentFeed follows the calling agent's feed (agentDeploymentObjects)
// and calls handle for each object, one at a time, in the order the broker
// sends them. Without after it starts with the agent's desired state;
// with after it first replays what was committed after that sequence.
//
// When the connection ends it reconnects (backoff with jitter, honouring
// retryAfter) and resumes with after = the highest sequenceId that handle
// accepted, so an object whose handle did not return is sent again and none
// is missed. It returns ctx.Err() when ctx ends, handle's error when it
// returns one, ErrUnauthenticated (wrapped) when the key is refused, or a
// *SubscriptionError the broker will not change its mind about
// (FORBIDDEN for a key that is not an agent's, say).
func (c *Client) FollowAgentFeed(ctx context.Context, after *int64, handle func(context.Context, *FeedObject) error) error {
	var cursor *int64
	if after != nil {
		a := *after
		cursor = &a
	}
	return follow(ctx, c, "agentDeploymentObjects",
		func(ws *WebSocket) (chan AgentFeedWsResponse, error) {
			ch, _, err := AgentFeed(ctx, ws, cursor)
			return ch, err
		},
		func(r AgentFeedWsResponse) error {
			if len(r.Errors) > 0 {
				return &SubscriptionError{Operation: "agentDeploymentObjects", Errors: r.Errors}
			}
			if r.Data == nil {
				return &decodeError{errors.New("a payload with neither data nor errors")}
			}
			obj := r.Data.AgentDeploymentObjects
			if err := handle(ctx, &obj); err != nil {
				return &handlerError{err}
			}
			if cursor == nil || obj.SequenceId > *cursor {
				seq := obj.SequenceId
				cursor = &seq
			}
			return nil
		})
}

// FollowAgentEvents follows the agentEvents subscription (the events the
// key may see, matching filter; nil for all) and calls handle for each.
// It reconnects as FollowAgentFeed does, but agentEvents has no resume
// point: events reported while it was reconnecting are not replayed
// (query agentEvents for them).
func (c *Client) FollowAgentEvents(ctx context.Context, filter *AgentEventFilter, handle func(context.Context, *Event) error) error {
	return follow(ctx, c, "agentEvents",
		func(ws *WebSocket) (chan WatchAgentEventsWsResponse, error) {
			ch, _, err := WatchAgentEvents(ctx, ws, filter)
			return ch, err
		},
		func(r WatchAgentEventsWsResponse) error {
			if len(r.Errors) > 0 {
				return &SubscriptionError{Operation: "agentEvents", Errors: r.Errors}
			}
			if r.Data == nil {
				return &decodeError{errors.New("a payload with neither data nor errors")}
			}
			if err := handle(ctx, &r.Data.AgentEvents); err != nil {
				return &handlerError{err}
			}
			return nil
		})
}

// handlerError carries the caller's handle error out of follow.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// errCompleted: the broker completed the subscription without an error (a
// subscriber cut off for falling behind, say): resubscribe.
var errCompleted = errors.New("the broker ended the subscription")

// stableAfter: a connection that lasted this long resets the backoff even
// if it delivered nothing (an idle feed).
const stableAfter = time.Minute

// follow keeps a subscription going across connections: subscribe starts
// it on a fresh websocket, receive takes each payload.
func follow[T any](ctx context.Context, c *Client, name string, subscribe func(*WebSocket) (chan T, error), receive func(T) error) error {
	failures := 0
	for {
		start := time.Now()
		delivered, err := followOnce(ctx, c, subscribe, receive)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if he := (*handlerError)(nil); errors.As(err, &he) {
			return he.err
		}
		if ferr := fatal(err); ferr != nil {
			return fmt.Errorf("%s: %w", name, ferr)
		}
		if delivered > 0 || time.Since(start) >= stableAfter {
			failures = 0
		}
		hint, _ := RetryAfter(err)
		if ce := (*CloseError)(nil); errors.As(err, &ce) && ce.Code == CloseTryAgainLater {
			hint = max(hint, time.Second)
		}
		wait := c.backoff(failures, hint)
		failures++
		level := c.opts.Logger.Warn
		if ce := (*CloseError)(nil); errors.Is(err, errCompleted) || errors.As(err, &ce) && ce.Code == CloseServiceRestart {
			level = c.opts.Logger.Info
		}
		level("subscription interrupted; reconnecting", "subscription", name, "in", wait.Round(time.Millisecond), "err", err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// followOnce runs the subscription on one connection until it ends, and
// says how many payloads receive took and why it ended.
func followOnce[T any](ctx context.Context, c *Client, subscribe func(*WebSocket) (chan T, error), receive func(T) error) (int, error) {
	ws := c.WebSocket()
	if _, err := ws.Start(ctx); err != nil {
		return 0, err
	}
	defer ws.Close()
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()
	ch, err := subscribe(ws)
	if err != nil {
		return 0, err
	}
	delivered := 0
	for msg := range ch {
		if err := receive(msg); err != nil {
			ws.Close()
			for range ch { // the dispatcher may be waiting to hand one more over
			}
			return delivered, err
		}
		delivered++
	}
	if err := ws.Err(); err != nil {
		return delivered, err
	}
	if ctx.Err() != nil {
		return delivered, ctx.Err()
	}
	return delivered, errCompleted
}

// fatal is the error to stop with when err is one that reconnecting cannot
// fix, nil when following should go on.
func fatal(err error) error {
	var ce *CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case CloseUnauthenticated:
			return fmt.Errorf("%w: %s", ErrUnauthenticated, ce.Reason)
		case CloseBadRequest, CloseDuplicateID, CloseTooManyInits:
			return err // a client bug: the same again would fail the same way
		}
		return nil
	}
	var de *decodeError
	if errors.As(err, &de) {
		return err
	}
	var se *SubscriptionError
	if errors.As(err, &se) {
		switch ErrorCode(err) {
		case CodeUnauthenticated:
			return fmt.Errorf("%w: %s", ErrUnauthenticated, Describe(err))
		case CodeUnavailable, CodeRateLimited, CodeInternal, "":
			return nil
		}
		return err
	}
	return nil
}
