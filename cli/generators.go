package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/brokkr/brokkr/client"
)

func generatorsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "generators",
		Short: "List, create and delete generators (admins)",
		Long: `Generators are who publish: a CI pipeline, a team. Each has an API key that may
touch only its own stacks. A generator is named by name or id.`,
		Args: usageArgs(cobra.NoArgs),
	}
	clientFlags(cmd)
	list := &cobra.Command{
		Use:   "list",
		Short: "List generators",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  runE("warn", generatorsList),
	}
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a generator and print its API key (shown once)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE:  runE("warn", generatorsCreate),
	}
	create.Flags().String("description", "", "the generator's description")
	create.Flags().Int("rate-limit", 0, "requests per minute allowed to its key (0: the broker's default)")
	del := &cobra.Command{
		Use:   "delete GENERATOR",
		Short: "Delete a generator (its stacks too); its key is revoked for good",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE:  runE("warn", generatorsDelete),
	}
	del.Flags().Bool("hard", false, "remove the generator and everything under it for good")
	cmd.AddCommand(list, create, del)
	return cmd
}

func generatorTable(w *tabwriter.Writer, gens []client.GeneratorFields) {
	row(w, "NAME", "ID", "ACTIVE", "RATE LIMIT", "LAST ACTIVE", "CREATED")
	for _, g := range gens {
		row(w, g.Name, g.Id, g.IsActive, g.RateLimitPerMinute, g.LastActiveAt, g.CreatedAt)
	}
}

func generatorsList(s *session, _ []string) error {
	gens, err := s.generators(s.cmd.Context(), nil)
	if err != nil {
		return err
	}
	return s.emit(orEmpty(gens), func(w *tabwriter.Writer) { generatorTable(w, gens) })
}

func generatorsCreate(s *session, args []string) error {
	var desc *string
	if d, _ := s.cmd.Flags().GetString("description"); d != "" {
		desc = &d
	}
	var limit *int
	if n, _ := s.cmd.Flags().GetInt("rate-limit"); n != 0 {
		limit = &n
	}
	r, err := client.CreateGenerator(s.cmd.Context(), s.c, args[0], desc, limit)
	if err != nil {
		return err
	}
	g := r.CreateGenerator
	return s.emit(g, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "Created generator %s.\n\n    id:  %s\n    key: %s\n\n", g.Generator.Name, g.Generator.Id, g.ApiKey)
		fmt.Fprintln(w, "The key is shown only this once: give it to the generator as BROKKR_KEY.")
	})
}

func generatorsDelete(s *session, args []string) error {
	ctx := s.cmd.Context()
	g, err := s.generator(ctx, args[0])
	if err != nil {
		return err
	}
	hard, _ := s.cmd.Flags().GetBool("hard")
	r, err := client.DeleteGenerator(ctx, s.c, g.Id, &hard)
	if err != nil {
		return err
	}
	return s.emit(r.DeleteGenerator, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "Deleted generator %s; its key is revoked.\n", g.Name)
	})
}
