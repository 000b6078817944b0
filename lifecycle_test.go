package main

// The broker's process life with the embedded PostgreSQL (issue 8, item
// 10): SIGHUP, a broker killed with -9, two brokers on one data directory.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/brokkr/brokkr/localpg"
)

// embedded is the environment of a broker on the embedded default cluster
// under a fresh data directory, and a check of whether that cluster runs.
// The cluster is shut down after the test whatever happened.
func embedded(t *testing.T) (env []string, running func() bool) {
	t.Helper()
	dataDir := t.TempDir()
	pg := filepath.Join(dataDir, "pg")
	t.Cleanup(func() { _ = localpg.Shutdown(context.Background(), pg, nil) })
	return []string{"DATABASE_URL=", "BROKKR_DATA_DIR=" + dataDir}, func() bool {
		_, err := os.Stat(filepath.Join(pg, "pgdata", "postmaster.pid"))
		return err == nil
	}
}

// SIGHUP (the terminal closed) shuts down as SIGTERM does: websockets are
// closed with 1012, the process exits with status 0, and the embedded
// PostgreSQL is stopped.
func TestSighupShutsDownLikeSigterm(t *testing.T) {
	env, running := embedded(t)
	p := startBrokkr(t, env, "serve")
	closed := dialWS(t, p.base, p.adminKey()).closed()
	p.signal(syscall.SIGHUP, 30*time.Second)
	expectClose(t, closed, websocket.StatusServiceRestart, 5*time.Second, "SIGHUP")
	if running() {
		t.Fatal("embedded PostgreSQL still running after SIGHUP")
	}
}

// A broker killed with -9 leaves its embedded cluster running; the next
// start takes it over, says so, keeps the data, and stops it on exit.
func TestKilledBrokersClusterIsTakenOver(t *testing.T) {
	env, running := embedded(t)
	p := startBrokkr(t, env, "serve")
	key := p.adminKey()
	gql(t, p.base, key, `mutation { createGenerator(input: {name: "before-the-crash"}) { apiKey } }`, nil, &struct{}{})
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	if !running() {
		t.Fatal("the cluster did not outlive kill -9 (nothing to take over)")
	}

	p2 := startBrokkr(t, env, "serve")
	if !strings.Contains(p2.errOut(), "taking it over") {
		t.Fatalf("the second start did not say it took the cluster over:\n%s", p2.errOut())
	}
	var gs struct{ Generators struct{ TotalCount int } }
	gql(t, p2.base, key, `{ generators { totalCount } }`, nil, &gs)
	if gs.Generators.TotalCount != 1 {
		t.Fatalf("generators after the take-over: %d, want 1", gs.Generators.TotalCount)
	}
	p2.stop(30 * time.Second)
	if running() {
		t.Fatal("the taken-over cluster is still running after the broker's exit")
	}
}

// Two brokers on one data directory share its cluster: the one that started
// it leaving does not stop it under the other, which goes on serving and
// stops it as the last one out. Neither claims a take-over.
func TestSharedClusterOutlivesTheBrokerThatStartedIt(t *testing.T) {
	env, running := embedded(t)
	a := startBrokkr(t, env, "serve")
	key := a.adminKey()
	b := startBrokkr(t, env, "serve")
	a.stop(30 * time.Second)
	if !running() {
		t.Fatal("the cluster was stopped under the other broker")
	}
	var v struct{ Viewer struct{ Role string } }
	gql(t, b.base, key, `{ viewer { role } }`, nil, &v)
	if v.Viewer.Role != "ADMIN" {
		t.Fatalf("the remaining broker: role %q", v.Viewer.Role)
	}
	b.stop(30 * time.Second)
	if running() {
		t.Fatal("the cluster is still running after the last broker's exit")
	}
	if strings.Contains(a.errOut()+b.errOut(), "taking it over") {
		t.Fatalf("a live broker's cluster was taken over:\n%s\n%s", a.errOut(), b.errOut())
	}
}
