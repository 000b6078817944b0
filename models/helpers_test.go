package models_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/models"
)

var admin = models.AdminScope

// env is one test's database with a statement counter.
type env struct {
	t   *testing.T
	ctx context.Context
	db  *bun.DB
	n   *counter
}

// counter counts the SQL statements bun runs.
type counter struct{ n atomic.Int64 }

func (c *counter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }
func (c *counter) AfterQuery(_ context.Context, _ *bun.QueryEvent)                    { c.n.Add(1) }

func setup(t *testing.T) *env {
	t.Helper()
	t.Parallel()
	d := dbtest.New(t)
	c := &counter{}
	d.Bun.AddQueryHook(c)
	return &env{t: t, ctx: context.Background(), db: d.Bun, n: c}
}

// statements runs f and returns how many SQL statements it ran.
func (e *env) statements(f func()) int64 {
	before := e.n.n.Load()
	f()
	return e.n.n.Load() - before
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

func (e *env) generator(name string) (*models.Generator, string, models.Scope) {
	e.t.Helper()
	g := must[*models.GeneratorWithKey](e.t)(models.CreateGenerator(e.ctx, e.db, admin, models.CreateGeneratorInput{Name: name}))
	return g.Generator, g.APIKey, models.GeneratorScope(g.Generator.ID)
}

func (e *env) stack(gen uuid.UUID, name string, labels ...string) *models.Stack {
	e.t.Helper()
	return must[*models.Stack](e.t)(models.CreateStack(e.ctx, e.db, admin, models.CreateStackInput{GeneratorID: &gen, Name: name, Labels: labels}))
}

func (e *env) object(stack uuid.UUID, content string) *models.DeploymentObject {
	e.t.Helper()
	return must[*models.DeploymentObject](e.t)(models.CreateDeploymentObject(e.ctx, e.db, admin, models.CreateDeploymentObjectInput{StackID: stack, YamlContent: content}))
}

func (e *env) agent(name string, active bool) (*models.Agent, models.Scope) {
	e.t.Helper()
	a := must[*models.AgentWithKey](e.t)(models.CreateAgent(e.ctx, e.db, admin, models.CreateAgentInput{Name: name, ClusterName: "c1"}))
	if active {
		st := models.AgentStatusActive
		must[*models.Agent](e.t)(models.UpdateAgent(e.ctx, e.db, admin, models.UpdateAgentInput{ID: a.Agent.ID, Status: &st}))
	}
	return a.Agent, models.AgentScope(a.Agent.ID)
}

func (e *env) target(agent, stack uuid.UUID) {
	e.t.Helper()
	must[*models.AgentTarget](e.t)(models.AddAgentTarget(e.ctx, e.db, admin, agent, stack))
}

// wantKind fails unless err is a *models.Error of kind k.
func wantKind(t *testing.T, err error, k models.Kind) *models.Error {
	t.Helper()
	var de *models.Error
	if !errors.As(err, &de) {
		t.Fatalf("want %s error, got %v", k, err)
	}
	if de.Kind != k {
		t.Fatalf("want %s error, got %v", k, err)
	}
	return de
}

// wantField fails unless err is Invalid naming field.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	if de := wantKind(t, err, models.KindInvalid); de.Field != field {
		t.Fatalf("want invalid %q, got field %q (%v)", field, de.Field, err)
	}
}

func ptr[T any](v T) *T { return &v }

func names[T any](nodes []*T, name func(*T) string) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = name(n)
	}
	return out
}

var _ = fmt.Sprint
