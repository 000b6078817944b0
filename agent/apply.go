package agent

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/brokkr/brokkr/applier"
	"github.com/brokkr/brokkr/client"
)

// handle applies one object of the feed, reports it and records it (see
// the package documentation). An error ends the agent.
func (a *runner) handle(ctx context.Context, obj *client.FeedObject) error {
	log := a.log.With("stack", obj.Stack.Name, "sequence", obj.SequenceId)
	if a.state.applied(obj.Stack.Id, obj.SequenceId) {
		log.Debug("already applied; skipped")
		return nil
	}
	// The object in hand is finished on shutdown, within the grace period.
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(a.cfg.ShutdownGrace, cancel)
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stop()

	what := "applying"
	if obj.IsDeletionMarker {
		what = "removing (deletion marker)"
	}
	log.Info(what)
	start := time.Now()
	err := a.cfg.Applier.Apply(work, applier.Object{
		StackID:          obj.Stack.Id,
		StackName:        obj.Stack.Name,
		SequenceID:       obj.SequenceId,
		YAML:             obj.YamlContent,
		IsDeletionMarker: obj.IsDeletionMarker,
	})
	if work.Err() != nil {
		return work.Err() // interrupted: not applied; delivered again after a restart
	}
	status, message := StatusSuccess, ""
	if err != nil {
		status, message = StatusFailure, truncate(err.Error(), maxMessage)
		log.Warn("apply failed", "err", err, "duration", time.Since(start).Round(time.Millisecond))
	} else {
		log.Info("applied", "duration", time.Since(start).Round(time.Millisecond))
	}
	if err := a.report(work, obj.Id, status, message); err != nil {
		return err
	}
	a.state.record(obj.Stack.Id, StackState{Name: obj.Stack.Name, SequenceID: obj.SequenceId, Deleted: obj.IsDeletionMarker})
	return a.state.Save(a.cfg.StatePath)
}

// report sends the DEPLOY event, until the broker has it. When an attempt's
// outcome is unknown (UNAVAILABLE, or the answer lost), it first looks for
// the event before sending it again, so each object gets one event. An
// event the broker refuses for good (the object is no longer the agent's
// to see: deactivated, or its target removed) is logged and given up.
func (a *runner) report(ctx context.Context, objectID, status, message string) error {
	var msg *string
	if message != "" {
		msg = &message
	}
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		_, err := client.ReportAgentEvent(ctx, a.cfg.Client, objectID, EventDeploy, status, msg)
		if err == nil {
			return nil
		}
		switch code := client.ErrorCode(err); code {
		case client.CodeUnauthenticated:
			return errors.New("reporting an event: " + client.Describe(err))
		case client.CodeUnavailable, client.CodeRateLimited, client.CodeInternal, "":
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if code != client.CodeRateLimited && a.reported(ctx, objectID) {
				return nil
			}
			a.log.Warn("reporting the event failed; trying again", "object", objectID, "in", wait, "err", client.Describe(err))
			if err := sleepCtx(ctx, wait); err != nil {
				return err
			}
		default:
			a.log.Warn("the broker refused the event; not reported", "object", objectID, "status", status, "err", client.Describe(err))
			return nil
		}
	}
}

// reported says whether the broker has a DEPLOY event of this agent for
// the object (false when it cannot tell).
func (a *runner) reported(ctx context.Context, objectID string) bool {
	deploy := EventDeploy
	r, err := client.AgentObjectEvents(ctx, a.cfg.Client, a.id, objectID, &deploy)
	return err == nil && r.AgentEvents.TotalCount > 0
}

// truncate cuts s to at most n bytes on a UTF-8 boundary, keeping its end
// (where a command's error usually is).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…\n"
	s = s[len(s)-(n-len(mark)):]
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return mark + strings.TrimLeft(s, "\n")
}
