// Package logging builds the broker's logger from its environment:
//
//	BROKKR_LOG_LEVEL   debug | info | warn | error   (default info)
//	BROKKR_LOG_FORMAT  text | json                   (default text)
//
// text is log/slog's key=value lines, json one JSON object per line (for a
// log collector). Both go to the writer given, standard error for the broker.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Environment variables read by FromEnv.
const (
	EnvLevel  = "BROKKR_LOG_LEVEL"
	EnvFormat = "BROKKR_LOG_FORMAT"
)

// FromEnv is New with $BROKKR_LOG_LEVEL and $BROKKR_LOG_FORMAT. On a bad
// value it still returns a usable logger (info, text) with the error, so
// the caller can log the error before it exits.
func FromEnv(w io.Writer) (*slog.Logger, error) {
	return New(w, os.Getenv(EnvLevel), os.Getenv(EnvFormat))
}

// New returns a logger writing to w at level (debug, info, warn or error;
// empty: info) in format (text or json; empty: text). On a bad value it
// returns an info text logger and an error naming what is accepted.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	lvl, lerr := ParseLevel(level)
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	var ferr error
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "", "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		h = slog.NewTextHandler(w, opts)
		ferr = fmt.Errorf("%s must be text or json, got %q", EnvFormat, format)
	}
	if lerr != nil {
		return slog.New(h), lerr
	}
	return slog.New(h), ferr
}

// ParseLevel reads a level name, case-insensitively: debug, info, warn (or
// warning), error; empty is info.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("%s must be one of debug, info, warn, error; got %q", EnvLevel, s)
}
