package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/brokkr/brokkr/client"
	"github.com/brokkr/brokkr/logging"
)

// DefaultURL is the broker's URL when neither --url nor BROKKR_URL says.
const DefaultURL = "http://localhost:8080"

// clientFlags adds the flags every client command shares (persistent, so
// subcommands have them too) and its environment to the help.
func clientFlags(cmd *cobra.Command) *cobra.Command {
	f := cmd.PersistentFlags()
	f.String("url", "", "the broker's URL (default $BROKKR_URL, else "+DefaultURL+")")
	f.String("key", "", "the API key (default $BROKKR_KEY; prefer the variable: flags show in ps)")
	f.StringP("output", "o", "table", "output format: table or json")
	SetEnv(cmd, ClientEnv)
	return cmd
}

// session is one client command's run: the broker client, the output, and
// what was learnt about the caller.
type session struct {
	cmd    *cobra.Command
	c      *client.Client
	out    io.Writer
	json   bool
	log    *slog.Logger
	viewer *client.ViewerViewer
}

// newSession reads the client flags and environment.
func newSession(cmd *cobra.Command, defaultLevel string) (*session, error) {
	output, _ := cmd.Flags().GetString("output")
	if output != "table" && output != "json" {
		return nil, usage(fmt.Errorf("-o must be table or json, not %q", output))
	}
	url := flagOrEnv(cmd, "url", "BROKKR_URL", DefaultURL)
	key := flagOrEnv(cmd, "key", "BROKKR_KEY", "")
	if key == "" {
		return nil, usage(errors.New("no API key: set BROKKR_KEY (or pass --key)"))
	}
	level := os.Getenv(logging.EnvLevel)
	if level == "" {
		level = defaultLevel
	}
	logger, err := logging.New(cmd.ErrOrStderr(), level, os.Getenv(logging.EnvFormat))
	if err != nil {
		return nil, usage(err)
	}
	c, err := client.New(url, key, client.Options{Logger: logger, UserAgent: "brokkr-cli"})
	if err != nil {
		return nil, usage(err)
	}
	return &session{cmd: cmd, c: c, out: cmd.OutOrStdout(), json: output == "json", log: logger}, nil
}

func flagOrEnv(cmd *cobra.Command, flag, env, def string) string {
	if f := cmd.Flags().Lookup(flag); f != nil && f.Changed {
		return f.Value.String()
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	return def
}

// runE adapts a function of a session to cobra.
func runE(level string, fn func(s *session, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		s, err := newSession(cmd, level)
		if err != nil {
			return err
		}
		return fn(s, args)
	}
}

// emit prints v as JSON, or calls table for people.
func (s *session) emit(v any, table func(w *tabwriter.Writer)) error {
	if s.json {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(s.out, "%s\n", b)
		return err
	}
	w := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	table(w)
	return w.Flush()
}

// say prints a line for people (nothing with -o json).
func (s *session) say(format string, args ...any) {
	if !s.json {
		fmt.Fprintf(s.out, format+"\n", args...)
	}
}

// row writes one tab-separated table row.
func row(w io.Writer, cells ...any) {
	parts := make([]string, len(cells))
	for i, c := range cells {
		parts[i] = cell(c)
	}
	fmt.Fprintln(w, strings.Join(parts, "\t"))
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		return x
	case *string:
		if x == nil || *x == "" {
			return "-"
		}
		return *x
	case time.Time:
		return x.Local().Format(time.DateTime)
	case *time.Time:
		if x == nil {
			return "-"
		}
		return x.Local().Format(time.DateTime)
	case *int:
		if x == nil {
			return "-"
		}
		return fmt.Sprint(*x)
	case []string:
		if len(x) == 0 {
			return "-"
		}
		return strings.Join(x, ",")
	}
	return fmt.Sprint(v)
}

// orEmpty gives JSON [] instead of null for an empty list.
func orEmpty[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}
