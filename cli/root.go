// Package cli is the brokkr command line: the root command, which the
// broker's own commands (serve, migrate, admin; package main) join, and the
// client commands that call a broker through package client: push,
// rollback, stacks, targets, agents, generators, keys, events, and the
// reference agent (`brokkr agent run`, package agent).
//
// Client commands read the broker's URL and an API key from BROKKR_URL
// (default http://localhost:8080) and BROKKR_KEY, or --url and --key, and
// print human tables, or JSON with -o json. Errors go to standard error
// with their code (NOT_FOUND: …) and a non-zero exit status: 1 for a
// failure, 2 for a usage mistake.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/brokkr/brokkr/client"
)

// Command groups of the root's help.
const (
	GroupBroker = "broker"
	groupClient = "client"
	groupAgent  = "agent"
)

// Exit statuses.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// annotationEnv holds a command's environment variables for its help: one
// "NAME\tmeaning" per line. A command without one shows its parent's.
const annotationEnv = "brokkr.env"

// ClientEnv is the environment of the client commands.
const ClientEnv = "BROKKR_URL\tthe broker's URL (default http://localhost:8080); --url overrides it\n" +
	"BROKKR_KEY\tthe API key (admin, generator or agent); --key overrides it\n" +
	"BROKKR_LOG_LEVEL\tdebug, info, warn (default for commands) or error: what is logged to standard error\n" +
	"BROKKR_LOG_FORMAT\ttext (default) or json"

// SetEnv sets the environment variables the help of cmd lists.
func SetEnv(cmd *cobra.Command, env string) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[annotationEnv] = env
}

// environment renders the help's environment section of cmd: names in a
// column (a name too long for it gets its meaning on the next line).
func environment(cmd *cobra.Command) string {
	const column = 30
	for c := cmd; c != nil; c = c.Parent() {
		env, ok := c.Annotations[annotationEnv]
		if !ok {
			continue
		}
		lines := strings.Split(env, "\n")
		width := 0
		for _, l := range lines {
			name, _, _ := strings.Cut(l, "\t")
			if len(name) <= column {
				width = max(width, len(name))
			}
		}
		var b strings.Builder
		for _, l := range lines {
			name, meaning, _ := strings.Cut(l, "\t")
			if len(name) > width {
				fmt.Fprintf(&b, "  %s\n  %-*s  %s\n", name, width, "", meaning)
			} else {
				fmt.Fprintf(&b, "  %-*s  %s\n", width, name, meaning)
			}
		}
		return strings.TrimRight(b.String(), "\n")
	}
	return ""
}

// usageTemplate is cobra's, with the environment after the flags.
const usageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}{{$cmds := .Commands}}{{if eq (len .Groups) 0}}

Available Commands:{{range $cmds}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{else}}{{range $group := .Groups}}

{{.Title}}{{range $cmds}}{{if (and (eq .GroupID $group.ID) (or .IsAvailableCommand (eq .Name "help")))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if not .AllChildCommandsHaveGroup}}

Additional Commands:{{range $cmds}}{{if (and (eq .GroupID "") (or .IsAvailableCommand (eq .Name "help")))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{with environment .}}

Environment variables:
{{.}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
`

// NewRoot is the brokkr command with the broker's own commands (given by
// package main, in GroupBroker) and the client commands. run is what
// `brokkr` alone does (serve).
func NewRoot(run func(cmd *cobra.Command, args []string) error, broker ...*cobra.Command) *cobra.Command {
	cobra.AddTemplateFunc("environment", environment)
	root := &cobra.Command{
		Use:   "brokkr",
		Short: "Brokkr: deploy Kubernetes manifests to many clusters",
		Long: `Brokkr is a control plane for deploying Kubernetes manifests to many clusters.
Generators (CI jobs) push deployment objects to stacks; agents in clusters
apply them and report back. This one binary is the broker (serve), the CLI
for generators and admins, and the reference agent (agent run).

Without a command, brokkr serves (as "brokkr serve").`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		RunE:              run,
		Args:              usageArgs(cobra.NoArgs),
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetUsageTemplate(usageTemplate)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	root.AddGroup(
		&cobra.Group{ID: GroupBroker, Title: "The broker:"},
		&cobra.Group{ID: groupClient, Title: "Generators and admins (BROKKR_URL, BROKKR_KEY):"},
		&cobra.Group{ID: groupAgent, Title: "Agents (BROKKR_URL, BROKKR_KEY):"},
	)
	for _, c := range broker {
		c.GroupID = GroupBroker
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{
		pushCommand(), rollbackCommand(), stacksCommand(), targetsCommand(), agentsCommand(),
		generatorsCommand(), keysCommand(), eventsCommand(),
	} {
		c.GroupID = groupClient
		root.AddCommand(c)
	}
	a := agentCommand()
	a.GroupID = groupAgent
	root.AddCommand(a)
	return root
}

// usageError is a mistake in how a command was called (exit status 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err}
}

// usageArgs marks an argument validator's errors as usage errors.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error { return usage(v(cmd, args)) }
}

// Main runs the command line with the process's arguments and returns the
// exit status. SIGINT, SIGTERM and SIGHUP end the command's context.
func Main(root *cobra.Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	return Execute(ctx, root, os.Args[1:], os.Stdout, os.Stderr)
}

// Execute runs root with args and returns the exit status; errors are
// written to stderr.
func Execute(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer) int {
	root.SetArgs(compatArgs(args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, errReported) {
		return ExitError
	}
	var ue *usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		fmt.Fprintf(stderr, "Error: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return ExitUsage
	}
	if out, _ := cmd.Flags().GetString("output"); out == "json" {
		writeJSONError(stderr, err)
		return ExitError
	}
	fmt.Fprintf(stderr, "Error: %s\n", client.Describe(err))
	return ExitError
}

// errReported: the command has told the user already (exit status 1).
var errReported = errors.New("reported")

// Reported marks err as told already (logged by the broker's commands):
// Execute exits with status 1 without printing it again.
func Reported(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", errReported, err)
}

// writeJSONError writes {"errors": [{"message", "code", "path"}]}.
func writeJSONError(w io.Writer, err error) {
	type jsonError struct {
		Message    string         `json:"message"`
		Code       string         `json:"code,omitempty"`
		Path       string         `json:"path,omitempty"`
		Extensions map[string]any `json:"extensions,omitempty"`
	}
	var out []jsonError
	for _, e := range client.GraphQLErrors(err) {
		code, _ := e.Extensions["code"].(string)
		out = append(out, jsonError{Message: e.Message, Code: code, Path: e.Path.String(), Extensions: e.Extensions})
	}
	if len(out) == 0 {
		out = append(out, jsonError{Message: err.Error()})
	}
	b, _ := json.MarshalIndent(map[string]any{"errors": out}, "", "  ")
	fmt.Fprintf(w, "%s\n", b)
}

// compatArgs accepts the Go-flag spellings the broker's commands had
// before cobra (-no-migrate, -all): pflag reads a single dash as
// shorthand flags.
func compatArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		switch a {
		case "-no-migrate", "-all":
			a = "-" + a
		}
		out[i] = a
	}
	return out
}
