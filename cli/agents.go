package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/brokkr/brokkr/client"
)

func agentsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "List, create, activate and deactivate agents (admins)",
		Long: `Agents run in clusters and apply the stacks they target. Admins create them (the
key is shown once) and activate them: a new agent is INACTIVE and receives
nothing until then. An agent is named by id, or by name (--cluster when the
name is not unique). Generators see the agents that target their stacks.`,
		Args: usageArgs(cobra.NoArgs),
	}
	clientFlags(cmd)
	cmd.PersistentFlags().String("cluster", "", "the agents' cluster (a filter for list; with an agent's name, which one)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the agents the key sees",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  runE("warn", agentsList),
	}
	list.Flags().String("status", "", "only ACTIVE or INACTIVE agents")
	list.Flags().StringSlice("label", nil, "only agents with this label (repeatable: all of them)")

	create := &cobra.Command{
		Use:   "create --name NAME --cluster CLUSTER",
		Short: "Create an agent and print its API key (shown once)",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  runE("warn", agentsCreate),
	}
	create.Flags().String("name", "", "the agent's name (required)")
	create.Flags().StringSlice("label", nil, "a label (repeatable)")
	create.Flags().StringArray("annotation", nil, "an annotation KEY=VALUE (repeatable)")

	activate := &cobra.Command{
		Use:   "activate AGENT",
		Short: "Set an agent ACTIVE: it receives its desired state at once",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE:  runE("warn", func(s *session, args []string) error { return s.setStatus(args[0], client.AgentStatusActive) }),
	}
	deactivate := &cobra.Command{
		Use:   "deactivate AGENT",
		Short: "Set an agent INACTIVE: its feed goes silent (what it applied stays)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE:  runE("warn", func(s *session, args []string) error { return s.setStatus(args[0], client.AgentStatusInactive) }),
	}
	cmd.AddCommand(list, create, activate, deactivate)
	return cmd
}

func agentTable(w *tabwriter.Writer, agents []client.AgentFields) {
	row(w, "NAME", "CLUSTER", "STATUS", "ID", "LAST HEARTBEAT", "LABELS")
	for _, a := range agents {
		row(w, a.Name, a.ClusterName, string(a.Status), a.Id, a.LastHeartbeat, a.Labels)
	}
}

func agentsList(s *session, _ []string) error {
	ctx := s.cmd.Context()
	filter := &client.AgentFilter{}
	if c, _ := s.cmd.Flags().GetString("cluster"); c != "" {
		filter.ClusterName = &c
	}
	if st, _ := s.cmd.Flags().GetString("status"); st != "" {
		status := client.AgentStatus(st)
		if status != client.AgentStatusActive && status != client.AgentStatusInactive {
			return usage(fmt.Errorf("--status must be ACTIVE or INACTIVE, not %q", st))
		}
		filter.Status = &status
	}
	filter.Labels, _ = s.cmd.Flags().GetStringSlice("label")
	agents, err := s.agents(ctx, filter)
	if err != nil {
		return err
	}
	return s.emit(orEmpty(agents), func(w *tabwriter.Writer) { agentTable(w, agents) })
}

func agentsCreate(s *session, _ []string) error {
	name, _ := s.cmd.Flags().GetString("name")
	cluster, _ := s.cmd.Flags().GetString("cluster")
	if name == "" || cluster == "" {
		return usage(errors.New("--name and --cluster are required"))
	}
	labels, _ := s.cmd.Flags().GetStringSlice("label")
	raw, _ := s.cmd.Flags().GetStringArray("annotation")
	annotations, err := parseAnnotations(raw)
	if err != nil {
		return err
	}
	r, err := client.CreateAgent(s.cmd.Context(), s.c, name, cluster, labels, annotations)
	if err != nil {
		return err
	}
	a := r.CreateAgent
	return s.emit(a, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "Created agent %s in cluster %s (INACTIVE until activated).\n\n", a.Agent.Name, a.Agent.ClusterName)
		fmt.Fprintf(w, "    id:  %s\n    key: %s\n\n", a.Agent.Id, a.ApiKey)
		fmt.Fprintf(w, "The key is shown only this once. Activate the agent with: brokkr agents activate %s\n", a.Agent.Id)
	})
}

func (s *session) setStatus(agent string, status client.AgentStatus) error {
	ctx := s.cmd.Context()
	id, err := s.agentID(ctx, agent)
	if err != nil {
		return err
	}
	r, err := client.SetAgentStatus(ctx, s.c, id, status)
	if err != nil {
		return err
	}
	a := r.UpdateAgent
	return s.emit(a, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "Agent %s (%s) is %s.\n", a.Name, a.Id, a.Status)
	})
}
