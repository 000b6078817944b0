package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/brokkr/brokkr/client"
)

func eventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show agents' events: the latest, and live with --follow",
		Long: `Show the latest agent events the key may see (oldest of them first), as agents
report them: eventType DEPLOY with status SUCCESS, or FAILURE and the error as
the message. --follow then keeps printing new events as they are reported
(over the agentEvents subscription; with -o json, one JSON object per line),
until interrupted; it reconnects by itself, but events reported while it was
reconnecting are not shown.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: runE("warn", events),
	}
	clientFlags(cmd)
	f := cmd.Flags()
	f.IntP("limit", "n", 20, "how many of the latest events to show first (0: none)")
	f.BoolP("follow", "f", false, "then show new events as they come")
	f.String("stack", "", "only events about this stack's objects (name or id)")
	f.String("generator", "", "admins: the stack's generator (name or id)")
	f.String("agent", "", "only this agent's events (id, or name)")
	f.String("cluster", "", "with an agent's name: its cluster")
	f.String("status", "", "only events with this status (SUCCESS, FAILURE)")
	f.String("type", "", "only events of this type (DEPLOY)")
	return cmd
}

// eventFilter builds the filter from the flags.
func (s *session) eventFilter(ctx context.Context) (*client.AgentEventFilter, error) {
	filter := &client.AgentEventFilter{}
	if name, _ := s.cmd.Flags().GetString("stack"); name != "" {
		st, err := s.stack(ctx, name)
		if err != nil {
			return nil, err
		}
		filter.StackId = &st.Id
	}
	if agent, _ := s.cmd.Flags().GetString("agent"); agent != "" {
		id, err := s.agentID(ctx, agent)
		if err != nil {
			return nil, err
		}
		filter.AgentId = &id
	}
	if v, _ := s.cmd.Flags().GetString("status"); v != "" {
		filter.Status = &v
	}
	if v, _ := s.cmd.Flags().GetString("type"); v != "" {
		filter.EventType = &v
	}
	return filter, nil
}

func events(s *session, _ []string) error {
	ctx := s.cmd.Context()
	filter, err := s.eventFilter(ctx)
	if err != nil {
		return err
	}
	limit, _ := s.cmd.Flags().GetInt("limit")
	follow, _ := s.cmd.Flags().GetBool("follow")
	if !follow {
		latest, err := s.latestEvents(ctx, filter, limit)
		if err != nil {
			return err
		}
		return s.emit(orEmpty(latest), func(w *tabwriter.Writer) {
			eventHeader(w)
			for i := range latest {
				eventRow(w, &latest[i])
			}
		})
	}
	return s.followEvents(ctx, filter, limit)
}

// latestEvents are the newest limit events, oldest first.
func (s *session) latestEvents(ctx context.Context, filter *client.AgentEventFilter, limit int) ([]client.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	first := min(limit, pageSize)
	r, err := client.AgentEvents(ctx, s.c, &first, nil, filter)
	if err != nil {
		return nil, err
	}
	out := r.AgentEvents.Nodes
	slices.Reverse(out)
	return out, nil
}

// followEvents prints the latest events, then the live ones, until ctx
// ends (an interrupt is a normal end).
func (s *session) followEvents(ctx context.Context, filter *client.AgentEventFilter, limit int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	live := make(chan client.Event, 256)
	done := make(chan error, 1)
	go func() {
		done <- s.c.FollowAgentEvents(ctx, filter, func(ctx context.Context, e *client.Event) error {
			select {
			case live <- *e:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	latest, err := s.latestEvents(ctx, filter, limit)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	if !s.json {
		printEvent(s.out, nil)
	}
	for i := range latest {
		seen[latest[i].Id] = true
		s.printLive(&latest[i])
	}
	for {
		select {
		case e := <-live:
			if !seen[e.Id] {
				s.printLive(&e)
			}
		case err := <-done:
			if ctx.Err() != nil {
				return nil // interrupted
			}
			return err
		}
	}
}

// printLive prints one event as a line of its own (JSON Lines with -o json).
func (s *session) printLive(e *client.Event) {
	if s.json {
		b, _ := json.Marshal(e)
		fmt.Fprintf(s.out, "%s\n", b)
		return
	}
	printEvent(s.out, e)
}

// printEvent prints an event in fixed columns (a live table cannot be
// aligned afterwards); nil prints the header.
func printEvent(w io.Writer, e *client.Event) {
	cells := []string{"TYPE", "STATUS", "AGENT", "STACK", "SEQUENCE", "TIME", "MESSAGE"}
	if e != nil {
		cells = eventCells(e)
	}
	fmt.Fprintf(w, "%-8s %-8s %-16s %-16s %-9s %-19s %s\n", cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6])
}

func eventHeader(w io.Writer) {
	row(w, "TYPE", "STATUS", "AGENT", "STACK", "SEQUENCE", "TIME", "MESSAGE")
}

func eventRow(w io.Writer, e *client.Event) {
	c := eventCells(e)
	row(w, c[0], c[1], c[2], c[3], c[4], c[5], c[6])
}

func eventCells(e *client.Event) []string {
	msg := ""
	if e.Message != nil {
		msg, _, _ = strings.Cut(strings.TrimSpace(*e.Message), "\n")
		if len(msg) > 80 {
			msg = strings.ToValidUTF8(msg[:80], "") + "…"
		}
	}
	stack := e.DeploymentObject.Stack.Name
	if e.DeploymentObject.IsDeletionMarker {
		stack += " (deleted)"
	}
	return []string{e.EventType, e.Status, e.Agent.Name, stack, fmt.Sprint(e.DeploymentObject.SequenceId),
		cell(e.CreatedAt), cell(msg)}
}
