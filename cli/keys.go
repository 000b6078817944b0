package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/brokkr/brokkr/client"
)

func keysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Rotate API keys",
		Args:  usageArgs(cobra.NoArgs),
	}
	clientFlags(cmd)
	rotate := &cobra.Command{
		Use:   "rotate [--generator G | --agent A]",
		Short: "Replace an API key and print the new one (shown once)",
		Long: `Replace an API key: the old one stops working at once (on every broker, closing
its websockets), and the new one is printed once.

Without a flag, the key's own: an admin's (as "brokkr admin rotate-key" does on
the broker's machine), a generator's, or an agent's. Admins rotate any
generator's key with --generator NAME|ID and any agent's with --agent ID|NAME.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: runE("warn", keysRotate),
	}
	rotate.Flags().String("generator", "", "admins: rotate this generator's key (name or id)")
	rotate.Flags().String("agent", "", "admins: rotate this agent's key (id or name)")
	rotate.Flags().String("cluster", "", "with an agent's name: its cluster")
	cmd.AddCommand(rotate)
	return cmd
}

// rotated is what keys rotate prints with -o json.
type rotated struct {
	Kind   string `json:"kind"` // admin, generator or agent
	ID     string `json:"id,omitempty"`
	Name   string `json:"name,omitempty"`
	APIKey string `json:"apiKey"`
}

func keysRotate(s *session, _ []string) error {
	ctx := s.cmd.Context()
	gen, _ := s.cmd.Flags().GetString("generator")
	agent, _ := s.cmd.Flags().GetString("agent")
	if gen != "" && agent != "" {
		return usage(errors.New("give at most one of --generator and --agent"))
	}
	var out rotated
	switch {
	case gen != "":
		g, err := s.generator(ctx, gen)
		if err != nil {
			return err
		}
		if out, err = s.rotateGenerator(g.Id); err != nil {
			return err
		}
	case agent != "":
		id, err := s.agentID(ctx, agent)
		if err != nil {
			return err
		}
		if out, err = s.rotateAgent(id); err != nil {
			return err
		}
	default:
		v, err := s.whoAmI(ctx)
		if err != nil {
			return err
		}
		switch {
		case v.Role == client.RoleGenerator && v.Generator != nil:
			out, err = s.rotateGenerator(v.Generator.Id)
		case v.Role == client.RoleAgent && v.Agent != nil:
			out, err = s.rotateAgent(v.Agent.Id)
		default:
			var r *client.RotateAdminKeyResponse
			if r, err = client.RotateAdminKey(ctx, s.c); err == nil && r.RotateAdminKey != nil {
				out = rotated{Kind: "admin", APIKey: *r.RotateAdminKey}
			}
		}
		if err != nil {
			return err
		}
	}
	return s.emit(out, func(w *tabwriter.Writer) {
		who := "the admin"
		if out.Kind != "admin" {
			who = fmt.Sprintf("%s %s (%s)", out.Kind, out.Name, out.ID)
		}
		fmt.Fprintf(w, "New API key of %s (shown once; the old key no longer works):\n\n    %s\n\n", who, out.APIKey)
	})
}

func (s *session) rotateGenerator(id string) (rotated, error) {
	r, err := client.RotateGeneratorKey(s.cmd.Context(), s.c, id)
	if err != nil {
		return rotated{}, err
	}
	g := r.RotateGeneratorKey
	return rotated{Kind: "generator", ID: g.Generator.Id, Name: g.Generator.Name, APIKey: g.ApiKey}, nil
}

func (s *session) rotateAgent(id string) (rotated, error) {
	r, err := client.RotateAgentKey(s.cmd.Context(), s.c, id)
	if err != nil {
		return rotated{}, err
	}
	a := r.RotateAgentKey
	return rotated{Kind: "agent", ID: a.Agent.Id, Name: a.Agent.Name, APIKey: a.ApiKey}, nil
}
