package logging_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/brokkr/brokkr/logging"
)

func TestLevelsAndFormats(t *testing.T) {
	t.Parallel()
	cases := []struct {
		level, format string
		debug, info   bool // which of a debug and an info line come out
		json          bool
	}{
		{"", "", false, true, false},
		{"debug", "text", true, true, false},
		{"DEBUG", "json", true, true, true},
		{"info", "JSON", false, true, true},
		{"warn", "", false, false, false},
		{"warning", "", false, false, false},
		{"error", "json", false, false, true},
	}
	for _, c := range cases {
		t.Run(c.level+"/"+c.format, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			l, err := logging.New(&buf, c.level, c.format)
			if err != nil {
				t.Fatal(err)
			}
			l.Debug("a debug line", "k", 1)
			l.Info("an info line", "k", 2)
			l.Error("an error line", "k", 3)
			out := buf.String()
			if strings.Contains(out, "a debug line") != c.debug || strings.Contains(out, "an info line") != c.info || !strings.Contains(out, "an error line") {
				t.Fatalf("level %q let through:\n%s", c.level, out)
			}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var m map[string]any
				isJSON := json.Unmarshal([]byte(line), &m) == nil
				if isJSON != c.json {
					t.Fatalf("format %q wrote %s", c.format, line)
				}
				if isJSON && (m["msg"] == nil || m["level"] == nil || m["time"] == nil) {
					t.Fatalf("json line without msg, level, time: %s", line)
				}
				if !isJSON && !strings.Contains(line, "level=") {
					t.Fatalf("text line without level=: %s", line)
				}
			}
		})
	}
}

func TestBadValues(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ level, format, want string }{
		{"verbose", "", "BROKKR_LOG_LEVEL must be one of debug, info, warn, error"},
		{"", "yaml", "BROKKR_LOG_FORMAT must be text or json"},
	} {
		var buf bytes.Buffer
		l, err := logging.New(&buf, c.level, c.format)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q, %q): %v, want %q", c.level, c.format, err, c.want)
		}
		if l == nil {
			t.Fatal("no fallback logger")
		}
		l.Info("still logs")
		if !strings.Contains(buf.String(), "still logs") {
			t.Errorf("the fallback logger wrote %q", buf.String())
		}
	}
}
