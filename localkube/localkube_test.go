package localkube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
	"k8s.io/client-go/discovery"
)

func TestVersionsMatchTheBuildModule(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("build", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("build/go.mod", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"k8s.io/kubernetes": KubernetesVersion, "go.etcd.io/etcd/server/v3": EtcdVersion}
	for _, r := range f.Require {
		if v, ok := want[r.Mod.Path]; ok {
			if r.Mod.Version != v {
				t.Errorf("build/go.mod requires %s %s, but the cache is named after %s", r.Mod.Path, r.Mod.Version, v)
			}
			delete(want, r.Mod.Path)
		}
	}
	if len(want) > 0 {
		t.Errorf("build/go.mod does not require %v", want)
	}
	// Every staging module is pinned to the release's v0 twin (v1.37.2 -> v0.37.2).
	staging := "v0" + strings.TrimPrefix(KubernetesVersion, "v1")
	if len(f.Replace) == 0 {
		t.Error("build/go.mod pins no staging module")
	}
	for _, r := range f.Replace {
		if !strings.HasPrefix(r.Old.Path, "k8s.io/") || r.New.Path != r.Old.Path || r.New.Version != staging {
			t.Errorf("replace %s => %s %s, want => %s %s", r.Old.Path, r.New.Path, r.New.Version, r.Old.Path, staging)
		}
	}
}

// needBinaries fails the test when the binaries are not built: the message
// says how to build them.
func needBinaries(t *testing.T) {
	t.Helper()
	if _, err := FindBinaries(); err != nil {
		t.Fatal(err)
	}
}

func TestBuildReusesBuiltBinaries(t *testing.T) {
	needBinaries(t)
	var out bytes.Buffer
	// A module that does not exist: Build must not need it.
	dir, err := Build(context.Background(), filepath.Join(t.TempDir(), "nothing"), &out)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := BinDir(); dir != want || !strings.Contains(out.String(), "already built") {
		t.Fatalf("Build = %s, %q; want %s, already built", dir, out.String(), want)
	}
}

func TestStartReuseAndStop(t *testing.T) {
	needBinaries(t)
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Start(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Shutdown(ctx, dir, nil) })
	if !s.Started() {
		t.Fatal("the first Start did not start the servers")
	}
	disc, err := discovery.NewDiscoveryClientForConfig(s.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	v, err := disc.ServerVersion()
	if err != nil || v.GitVersion != KubernetesVersion {
		t.Fatalf("ServerVersion = %v, %v; want %s", v, err, KubernetesVersion)
	}
	// Without the token the server refuses the request.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: mustTLS(t, s)}}
	resp, err := client.Get(s.URL() + "/api/v1/namespaces")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous request: %s, want 401", resp.Status)
	}

	// A second Start finds them running and leaves them to the first.
	again, err := Start(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Started() || again.URL() != s.URL() {
		t.Fatalf("second Start: started %v, URL %s (first %s)", again.Started(), again.URL(), s.URL())
	}
	if err := again.Stop(); err != nil || !s.running() {
		t.Fatalf("Stop of a Server that started nothing stopped the servers (err %v)", err)
	}

	// kube-apiserver dies: the next Start starts both afresh.
	pid, _ := s.pid("kube-apiserver")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, ok := s.pid("kube-apiserver"); return !ok })
	restarted, err := Start(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !restarted.Started() {
		t.Fatal("Start after a crash did not restart the servers")
	}
	if err := restarted.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, name := range servers {
		if _, ok := restarted.pid(name); ok {
			t.Errorf("%s still runs after Stop", name)
		}
	}
	if err := Shutdown(ctx, dir, nil); err != nil {
		t.Fatalf("Shutdown with nothing running: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustTLS(t *testing.T, s *Server) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.caPEM) {
		t.Fatal("no CA certificate")
	}
	return &tls.Config{RootCAs: pool}
}
