package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/brokkr/brokkr/client"
)

func targetsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "targets",
		Short: "Point agents at stacks (or stop)",
		Long: `A target points an agent at a stack: the agent receives the stack's deployment
objects (its latest one at once). A generator may target its own stacks at any
agent, named by id (a generator sees only the agents that target its stacks);
admins may name agents by name (--cluster when the name is not unique).`,
		Args: usageArgs(cobra.NoArgs),
	}
	clientFlags(cmd)
	pf := cmd.PersistentFlags()
	pf.String("stack", "", "the stack: name or id")
	pf.String("agent", "", "the agent: id, or name")
	pf.String("cluster", "", "with an agent's name: its cluster")
	pf.String("generator", "", "admins: the stack's generator (name or id)")

	add := &cobra.Command{
		Use:   "add --stack NAME --agent AGENT",
		Short: "Point an agent at a stack",
		Args:  usageArgs(cobra.NoArgs),
		RunE: runE("warn", func(s *session, _ []string) error {
			return s.editTarget(func(agentID, stackID string) (any, error) {
				r, err := client.AddAgentTarget(s.cmd.Context(), s.c, agentID, stackID)
				return r.AddAgentTarget, err
			}, "now targets")
		}),
	}
	remove := &cobra.Command{
		Use:   "remove --stack NAME --agent AGENT",
		Short: "Stop pointing an agent at a stack (what it applied stays)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: runE("warn", func(s *session, _ []string) error {
			return s.editTarget(func(agentID, stackID string) (any, error) {
				r, err := client.RemoveAgentTarget(s.cmd.Context(), s.c, agentID, stackID)
				return r.RemoveAgentTarget, err
			}, "no longer targets")
		}),
	}
	list := &cobra.Command{
		Use:   "list (--stack NAME | --agent AGENT)",
		Short: "List a stack's or an agent's targets",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  runE("warn", targetsList),
	}
	cmd.AddCommand(add, remove, list)
	return cmd
}

func (s *session) editTarget(edit func(agentID, stackID string) (any, error), verb string) error {
	ctx := s.cmd.Context()
	stackName, _ := s.cmd.Flags().GetString("stack")
	agent, _ := s.cmd.Flags().GetString("agent")
	if stackName == "" || agent == "" {
		return usage(errors.New("--stack and --agent are required"))
	}
	st, err := s.stack(ctx, stackName)
	if err != nil {
		return err
	}
	agentID, err := s.agentID(ctx, agent)
	if err != nil {
		return err
	}
	t, err := edit(agentID, st.Id)
	if err != nil {
		return err
	}
	return s.emit(t, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "Agent %s %s stack %s.\n", agent, verb, st.Name)
	})
}

func targetsList(s *session, _ []string) error {
	ctx := s.cmd.Context()
	stackName, _ := s.cmd.Flags().GetString("stack")
	agent, _ := s.cmd.Flags().GetString("agent")
	if (stackName == "") == (agent == "") {
		return usage(errors.New("give one of --stack and --agent"))
	}
	type page = client.StackTargetsStackTargetsAgentTargetConnection
	var fetch func(first int, after *string) (*page, error)
	if stackName != "" {
		st, err := s.stack(ctx, stackName)
		if err != nil {
			return err
		}
		fetch = func(first int, after *string) (*page, error) {
			r, err := client.StackTargets(ctx, s.c, st.Id, &first, after)
			if err != nil {
				return nil, err
			}
			if r.Stack == nil {
				return nil, notFound("stack %s not found", stackName)
			}
			return &r.Stack.Targets, nil
		}
	} else {
		id, err := s.agentID(ctx, agent)
		if err != nil {
			return err
		}
		fetch = func(first int, after *string) (*page, error) {
			r, err := client.AgentTargets(ctx, s.c, id, &first, after)
			if err != nil {
				return nil, err
			}
			if r.Agent == nil {
				return nil, notFound("agent %s not found", agent)
			}
			p := page(r.Agent.Targets)
			return &p, nil
		}
	}
	var targets []client.TargetFields
	var after *string
	for {
		p, err := fetch(pageSize, after)
		if err != nil {
			return err
		}
		targets = append(targets, p.Nodes...)
		if !p.PageInfo.HasNextPage {
			break
		}
		after = p.PageInfo.EndCursor
	}
	return s.emit(orEmpty(targets), func(w *tabwriter.Writer) {
		row(w, "STACK", "AGENT", "CLUSTER", "AGENT ID", "SINCE")
		for _, t := range targets {
			row(w, t.Stack.Name, t.Agent.Name, t.Agent.ClusterName, t.Agent.Id, t.CreatedAt)
		}
	})
}
