// Package kubetest gives tests a client configuration for a real Kubernetes
// API server: the cluster of the kubeconfig in $TEST_KUBECONFIG when set (as
// `make test` sets it, through scripts/with-testkube.sh), otherwise the
// localkube servers in <repo root>/.brokkr/kube, started on first use and
// left running afterwards (`go run ./cmd/testkube stop` stops them).
//
// The binaries must have been built (`make kube`, once per machine); a test
// fails, saying so, when they are not. Tests share the cluster: each names
// what it creates uniquely ([Suffix]).
package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/brokkr/brokkr/localkube"
)

// cluster is the test cluster: its client configuration and the path of
// an admin kubeconfig for it.
type cluster struct {
	cfg        *rest.Config
	kubeconfig string
}

var setup = sync.OnceValues(func() (*cluster, error) {
	if path := os.Getenv("TEST_KUBECONFIG"); path != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("TEST_KUBECONFIG=%s: %w", path, err)
		}
		return &cluster{cfg: cfg, kubeconfig: path}, nil
	}
	root, err := localkube.RepoRoot()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := localkube.Start(ctx, filepath.Join(root, ".brokkr", "kube"), logger)
	if err != nil {
		return nil, err
	}
	return &cluster{cfg: s.RESTConfig(), kubeconfig: s.Kubeconfig()}, nil
})

// Config is an administrator's client configuration for the test cluster.
func Config(t testing.TB) *rest.Config {
	t.Helper()
	c, err := setup()
	if err != nil {
		t.Fatalf("kubetest: no Kubernetes API server for the test: %v", err)
	}
	return rest.CopyConfig(c.cfg)
}

// Kubeconfig is the path of an administrator's kubeconfig for the test
// cluster, for tests of programs that read one (the agent's --kubeconfig).
func Kubeconfig(t testing.TB) string {
	t.Helper()
	c, err := setup()
	if err != nil {
		t.Fatalf("kubetest: no Kubernetes API server for the test: %v", err)
	}
	return c.kubeconfig
}

// Suffix is a random lowercase suffix for names a test creates (8 hex digits).
func Suffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
