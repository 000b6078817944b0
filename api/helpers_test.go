package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/models"
)

// env is one running server on its own database.
type env struct {
	srv   *httptest.Server
	db    *dbtest.DB
	admin string // the admin key
	logs  *bytes.Buffer
	logw  *lockedWriter
}

// logText is what the server logged so far.
func (e *env) logText() string {
	e.logw.mu.Lock()
	defer e.logw.mu.Unlock()
	return e.logs.String()
}

// setup starts api.New over a fresh database; cfg's DB and Logger are filled in.
func setup(t *testing.T, cfg api.Config) *env {
	t.Helper()
	return setupDB(t, dbtest.New(t), func(*env) api.Config { return cfg })
}

// setupWith is setup with a configuration that may use the database.
func setupWith(t *testing.T, cfg func(*env) api.Config) *env {
	t.Helper()
	return setupDB(t, dbtest.New(t), cfg)
}

// setupDB starts the server over an existing database.
func setupDB(t *testing.T, db *dbtest.DB, mk func(*env) api.Config) *env {
	t.Helper()
	key, created, err := models.EnsureAdminKey(context.Background(), db.Bun)
	if err != nil || !created {
		t.Fatalf("EnsureAdminKey: created=%v err=%v", created, err)
	}
	e := &env{db: db, admin: key, logs: &bytes.Buffer{}}
	e.logw = &lockedWriter{w: e.logs}
	cfg := mk(e)
	cfg.DB = db.Bun
	cfg.Logger = slog.New(slog.NewTextHandler(e.logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// gqlError is one entry of a response's errors.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type result struct {
	Status int
	Data   map[string]any
	Errors []gqlError
	Raw    string
}

func (r *result) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// gql posts a GraphQL request with key (empty: no Authorization header).
func (e *env) gql(t *testing.T, key, query string, vars map[string]any) *result {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	return e.post(t, key, body)
}

func (e *env) post(t *testing.T, key string, body []byte) *result {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/query", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := &result{Status: resp.StatusCode, Raw: string(raw)}
	if err := json.Unmarshal(raw, r); err != nil {
		t.Fatalf("response is not JSON (%d): %s", resp.StatusCode, raw)
	}
	checkNoLeak(t, r)
	return r
}

// ok runs a request that must succeed and returns its data.
func (e *env) ok(t *testing.T, key, query string, vars map[string]any) map[string]any {
	t.Helper()
	r := e.gql(t, key, query, vars)
	if len(r.Errors) > 0 || r.Status != http.StatusOK {
		t.Fatalf("unexpected errors (%d): %s\nquery: %s", r.Status, r.Raw, query)
	}
	return r.Data
}

// fails runs a request that must fail with code and returns the result.
func (e *env) fails(t *testing.T, key, code, query string, vars map[string]any) *result {
	t.Helper()
	r := e.gql(t, key, query, vars)
	if r.code() != code {
		t.Fatalf("want error code %s, got %q: %s\nquery: %s", code, r.code(), r.Raw, query)
	}
	return r
}

// leakMarkers are fragments of SQL, driver and Go error text that must
// never reach a client.
var leakMarkers = []string{
	"SQLSTATE", "pq:", "pgx", "pgconn", "ERROR:", "violates", "constraint \"", "relation \"",
	"syntax error at", "goroutine ", "panic", "runtime error", ".go:", "sql:", "bun:", "invalid UUID", "uuid:",
	"duplicate key", "BR001", "BR002", "not implemented",
}

func checkNoLeak(t *testing.T, r *result) {
	t.Helper()
	for _, e := range r.Errors {
		for _, m := range leakMarkers {
			if strings.Contains(e.Message, m) {
				t.Errorf("error message leaks internals (%q): %q", m, e.Message)
			}
		}
	}
}

// dig walks a decoded JSON value: dig(data, "generator", "stacks", "nodes", 0, "id").
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := dig(v, path...).(string)
	return s
}

func num(v any, path ...any) float64 {
	f, _ := dig(v, path...).(float64)
	return f
}

func list(v any, path ...any) []any {
	a, _ := dig(v, path...).([]any)
	return a
}
