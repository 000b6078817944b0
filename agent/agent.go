// Package agent is Brokkr's reference agent, `brokkr agent run`: it follows
// the agent's feed over a websocket, applies each deployment object with an
// applier (package applier), reports a DEPLOY event for it, and keeps its
// place in a state file so that a restart neither applies an object twice
// nor misses one.
//
// For every object the feed delivers, in feed order, one at a time:
//
//  1. if the state file records that object (or a later one) of its stack
//     as applied, it is skipped (the broker hands an object over again when
//     an agent is re-activated or a target added again);
//  2. the applier applies it (a deletion marker removes what the stack
//     applied);
//  3. a DEPLOY event is reported: status SUCCESS, or FAILURE with the
//     applier's error as the message (the vocabulary of AgentEvent in
//     schema.graphqls). A report whose answer was lost is checked for
//     before it is sent again, so each object gets one event;
//  4. the state file is written (atomically): the stack's last object and
//     the cursor, the highest sequenceId applied.
//
// A restart resumes the feed with after = that cursor: the broker replays
// what was committed since, and an object interrupted between 2 and 4 is
// delivered again (appliers are idempotent). Heartbeats (agentHeartbeat)
// go every Config.Heartbeat. While the agent is INACTIVE the broker sends
// nothing and the agent waits; once an admin activates it, the broker
// sends its desired state and it applies what it has not applied yet.
// On SIGTERM or SIGINT (the context's end) it finishes the object in hand
// (within Config.ShutdownGrace) and exits.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/brokkr/brokkr/applier"
	"github.com/brokkr/brokkr/client"
)

// The event vocabulary of the reference agent (AgentEvent in
// schema.graphqls).
const (
	EventDeploy   = "DEPLOY"
	StatusSuccess = "SUCCESS"
	StatusFailure = "FAILURE"
)

// Defaults for the zero values of Config.
const (
	DefaultHeartbeat     = 30 * time.Second
	DefaultShutdownGrace = 10 * time.Second
	// maxMessage is the broker's limit on an event's message (32 KiB).
	maxMessage = 32 << 10
)

// Config is what an agent runs with.
type Config struct {
	Client    *client.Client // with the agent's key
	Applier   applier.Applier
	StatePath string // the state file
	// Heartbeat is the interval of agentHeartbeat (DefaultHeartbeat).
	Heartbeat time.Duration
	// ShutdownGrace bounds how long the object in hand may take to finish
	// once the context ends (DefaultShutdownGrace).
	ShutdownGrace time.Duration
	Logger        *slog.Logger
}

// Run runs the agent until ctx ends (it then returns nil) or a failure it
// cannot recover from: a key that is not an agent's, or refused; a state
// file of another agent, or one it cannot write.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Client == nil || cfg.Applier == nil || cfg.StatePath == "" {
		return errors.New("agent: Client, Applier and StatePath are required")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	me, err := whoAmI(ctx, cfg.Client, cfg.Logger)
	if err != nil {
		return ignoreEnd(ctx, err)
	}
	state, err := LoadState(cfg.StatePath, me.Id)
	if err != nil {
		return err
	}
	a := &runner{cfg: cfg, log: cfg.Logger, id: me.Id, state: state}
	a.log.Info("agent started", "agent", me.Name, "cluster", me.ClusterName, "id", me.Id, "status", me.Status,
		"state", cfg.StatePath, "after", deref(state.After))
	a.noteStatus(me.Status)

	var wg sync.WaitGroup
	hbCtx, stopHeartbeat := context.WithCancel(ctx)
	wg.Go(func() { a.heartbeats(hbCtx) })
	defer wg.Wait()
	defer stopHeartbeat()

	err = cfg.Client.FollowAgentFeed(ctx, state.After, a.handle)
	if err = ignoreEnd(ctx, err); err == nil {
		a.log.Info("agent stopped", "after", deref(a.state.After))
	}
	return err
}

// ignoreEnd is nil for the context's own end: a clean shutdown.
func ignoreEnd(ctx context.Context, err error) error {
	if ctx.Err() != nil && (err == nil || errors.Is(err, ctx.Err())) {
		return nil
	}
	return err
}

func deref(p *int64) any {
	if p == nil {
		return "none (the desired state first)"
	}
	return *p
}

// whoAmI asks the broker who the key is, until it answers (the broker may
// be starting too) or refuses the key.
func whoAmI(ctx context.Context, c *client.Client, log *slog.Logger) (*client.ViewerViewerAgent, error) {
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		v, err := client.Viewer(ctx, c)
		if err == nil {
			if v.Viewer.Role != client.RoleAgent || v.Viewer.Agent == nil {
				return nil, fmt.Errorf("the key is a %s's, not an agent's: run the agent with an agent's key (brokkr agents create)", v.Viewer.Role)
			}
			return v.Viewer.Agent, nil
		}
		if code := client.ErrorCode(err); code != "" && code != client.CodeUnavailable && code != client.CodeRateLimited {
			return nil, fmt.Errorf("asking the broker who this key is: %s", client.Describe(err))
		}
		log.Warn("the broker does not answer yet; trying again", "in", wait, "err", err)
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runner is one running agent.
type runner struct {
	cfg   Config
	log   *slog.Logger
	id    string // the agent's id
	state *State // touched only by handle (the feed's one goroutine)

	mu     sync.Mutex
	status client.AgentStatus // the last status seen, for the log
}

// noteStatus logs the agent's status when it changes.
func (a *runner) noteStatus(s client.AgentStatus) {
	a.mu.Lock()
	prev := a.status
	a.status = s
	a.mu.Unlock()
	if prev == s {
		return
	}
	switch s {
	case client.AgentStatusInactive:
		a.log.Info("the agent is INACTIVE: the broker sends nothing until an admin activates it (brokkr agents activate " + a.id + ")")
	case client.AgentStatusActive:
		if prev != "" {
			a.log.Info("the agent is ACTIVE: applying its desired state")
		}
	}
}

// heartbeats sends agentHeartbeat now and every interval.
func (a *runner) heartbeats(ctx context.Context) {
	t := time.NewTicker(a.cfg.Heartbeat)
	defer t.Stop()
	for {
		r, err := client.AgentHeartbeat(ctx, a.cfg.Client)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			a.log.Warn("heartbeat failed", "err", client.Describe(err))
		case r.AgentHeartbeat != nil:
			a.noteStatus(r.AgentHeartbeat.Status)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
