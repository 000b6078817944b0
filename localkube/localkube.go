// Package localkube runs a real Kubernetes API server for tests: etcd and
// kube-apiserver, built once from the Go module proxy (see [Build] and the
// module in build/) and started by the project itself, the way localpg runs
// PostgreSQL. No controller manager, scheduler or kubelet runs: the API
// (validation, admission, RBAC, server-side apply, CRDs, garbage-free
// deletion) is real, but nothing reconciles. In particular a deleted
// Namespace stays Terminating, since finalizing it is the namespace
// controller's job.
//
// The binaries come from the module in build/, separate from the main
// module so that it never depends on k8s.io/kubernetes: kube-apiserver from
// k8s.io/kubernetes (whose staging modules, required there as v0.0.0 and
// replaced by directories, are pinned by replace to their published v0
// twins) and etcd from go.etcd.io/etcd/server/v3 at the version Kubernetes
// itself requires (Debian's etcd-server is 3.4, older than what this
// Kubernetes is tested with, and would need apt and root). Both need only Go
// 1.26 and the module proxy.
//
// A server lives in one directory:
//
//	dir/lock                       flock guarding start and stop
//	dir/pki/                       CA, serving certificate, service-account key, static token (made once)
//	dir/state.json                 ports of the running servers
//	dir/etcd-data/                 etcd's data, wiped at every start: the cluster is throwaway
//	dir/etcd.pid, dir/etcd.log
//	dir/kube-apiserver.pid, dir/kube-apiserver.log
//	dir/kubeconfig                 an admin kubeconfig (bearer token, CA)
//
// Both listen on 127.0.0.1 only, on ports free at start. The admin is a
// static token in group system:masters; authorization is RBAC.
//
// Several processes may call [Start] on the same directory: the first starts
// the servers (detached, in their own session), the others find them running
// and connect. [Server.Stop] stops them only if this Server started them;
// [Shutdown] stops them regardless.
package localkube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Server is a running etcd and kube-apiserver.
type Server struct {
	dir     string
	state   state
	token   string
	caPEM   []byte
	logger  *slog.Logger
	started bool
}

// state is dir/state.json: what a process needs to reach servers another
// process started.
type state struct {
	EtcdPort      int `json:"etcdPort"`
	EtcdPeerPort  int `json:"etcdPeerPort"`
	APIServerPort int `json:"apiServerPort"`
}

// Start makes sure etcd and kube-apiserver are running for dir, starting
// them from the built binaries ([FindBinaries]) unless they already run, and
// waits until the API server is ready.
func Start(ctx context.Context, dir string, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("localkube.Start: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localkube.Start: %w", err)
	}
	unlock, err := lock(ctx, dir, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("localkube.Start: %w", err)
	}
	defer unlock()
	s := &Server{dir: dir, logger: logger}
	if err := s.start(ctx); err != nil {
		return nil, fmt.Errorf("localkube.Start %s: %w", dir, err)
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	bin, err := FindBinaries()
	if err != nil {
		return err
	}
	if err := writePKI(s.pki()); err != nil {
		return fmt.Errorf("writing certificates: %w", err)
	}
	if err := s.loadCredentials(); err != nil {
		return err
	}
	if s.running() {
		if err := s.loadState(); err != nil {
			return err
		}
		s.logger.Debug("localkube: reusing running servers", "dir", s.dir, "port", s.state.APIServerPort)
		return s.waitReady(ctx, nil)
	}
	// Whatever half of a pair survived a crash goes: both start afresh.
	if err := s.stopAll(); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(s.dir, "etcd-data")); err != nil {
		return err
	}
	if err := s.pickPorts(); err != nil {
		return err
	}
	s.started = true // from here on, Stop cleans up whatever did start
	etcdExit, err := s.spawn(bin, "etcd", s.etcdArgs())
	if err != nil {
		return err
	}
	if err := s.waitEtcd(ctx, etcdExit); err != nil {
		return errors.Join(err, s.stopAll())
	}
	apiExit, err := s.spawn(bin, "kube-apiserver", s.apiServerArgs())
	if err != nil {
		return errors.Join(err, s.stopAll())
	}
	if err := s.waitReady(ctx, apiExit); err != nil {
		return errors.Join(err, s.stopAll())
	}
	return s.writeKubeconfig()
}

func (s *Server) pki() string                { return filepath.Join(s.dir, "pki") }
func (s *Server) pkiFile(name string) string { return filepath.Join(s.pki(), name) }

// URL is the API server's address (https://127.0.0.1:port).
func (s *Server) URL() string { return fmt.Sprintf("https://127.0.0.1:%d", s.state.APIServerPort) }

// Kubeconfig is the path of an admin kubeconfig for the server.
func (s *Server) Kubeconfig() string { return filepath.Join(s.dir, "kubeconfig") }

// Dir is the server directory.
func (s *Server) Dir() string { return s.dir }

// Started reports whether this Server started the servers rather than
// finding them running.
func (s *Server) Started() bool { return s.started }

// RESTConfig is an admin client configuration for client-go.
func (s *Server) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            s.URL(),
		BearerToken:     s.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.caPEM},
	}
}

func (s *Server) loadCredentials() error {
	tokens, err := os.ReadFile(s.pkiFile(tokenFile))
	if err != nil {
		return err
	}
	s.token, _, _ = strings.Cut(string(tokens), ",")
	s.caPEM, err = os.ReadFile(s.pkiFile(caCertFile))
	return err
}

func (s *Server) loadState() error {
	b, err := os.ReadFile(filepath.Join(s.dir, "state.json"))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, &s.state)
}

func (s *Server) pickPorts() error {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	s.state = state{EtcdPort: ports[0], EtcdPeerPort: ports[1], APIServerPort: ports[2]}
	b, err := json.Marshal(s.state)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.dir, "state.json"), append(b, '\n'), 0o644)
}

func (s *Server) etcdArgs() []string {
	client := fmt.Sprintf("http://127.0.0.1:%d", s.state.EtcdPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", s.state.EtcdPeerPort)
	return []string{
		"--name=localkube",
		"--data-dir=" + filepath.Join(s.dir, "etcd-data"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=localkube=" + peer,
		"--unsafe-no-fsync=true", // throwaway data: speed over durability
		"--log-level=warn",
	}
}

func (s *Server) apiServerArgs() []string {
	return []string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", s.state.EtcdPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", s.state.APIServerPort),
		"--cert-dir=" + s.pki(),
		"--tls-cert-file=" + s.pkiFile(serverCertFile),
		"--tls-private-key-file=" + s.pkiFile(serverKeyFile),
		"--token-auth-file=" + s.pkiFile(tokenFile),
		"--anonymous-auth=false",
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + s.pkiFile(saPubFile),
		"--service-account-signing-key-file=" + s.pkiFile(saKeyFile),
		// Only an allocation range for Service cluster IPs: no traffic goes there.
		"--service-cluster-ip-range=10.96.0.0/24",
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	}
}

// waitEtcd waits until etcd answers its health endpoint.
func (s *Server) waitEtcd(ctx context.Context, exited <-chan error) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/health", s.state.EtcdPort)
	return s.poll(ctx, "etcd", exited, func() error {
		return get(ctx, http.DefaultClient, url, "", `"health":"true"`)
	})
}

// waitReady waits until kube-apiserver is ready (/readyz) and has created
// the default namespace (its bootstrap controller does so just after).
func (s *Server) waitReady(ctx context.Context, exited <-chan error) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.caPEM) {
		return errors.New("no certificate in " + s.pkiFile(caCertFile))
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}
	defer client.CloseIdleConnections()
	return s.poll(ctx, "kube-apiserver", exited, func() error {
		if err := get(ctx, client, s.URL()+"/readyz", s.token, "ok"); err != nil {
			return err
		}
		return get(ctx, client, s.URL()+"/api/v1/namespaces/default", s.token, `"name":"default"`)
	})
}

// poll calls check until it succeeds, the process exits or two minutes
// pass (a loaded 2-core machine starts kube-apiserver in 10-30 s).
func (s *Server) poll(ctx context.Context, name string, exited <-chan error, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w%s", name, err, s.logTail(name))
		case werr := <-exited:
			return fmt.Errorf("%s exited during start (%v)%s", name, werr, s.logTail(name))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// get expects 200 and a body containing want.
func get(ctx context.Context, client *http.Client, url, token, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(want)) {
		return fmt.Errorf("GET %s: %s: %.300s", url, resp.Status, body)
	}
	return nil
}

func (s *Server) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["localkube"] = &clientcmdapi.Cluster{Server: s.URL(), CertificateAuthorityData: s.caPEM}
	cfg.AuthInfos["brokkr-admin"] = &clientcmdapi.AuthInfo{Token: s.token}
	cfg.Contexts["localkube"] = &clientcmdapi.Context{Cluster: "localkube", AuthInfo: "brokkr-admin"}
	cfg.CurrentContext = "localkube"
	return clientcmd.WriteToFile(*cfg, s.Kubeconfig())
}

// Stop stops the servers if this Server started them.
func (s *Server) Stop() error {
	if !s.started {
		return nil
	}
	unlock, err := lock(context.Background(), s.dir, io.Discard)
	if err != nil {
		return fmt.Errorf("localkube.Stop: %w", err)
	}
	defer unlock()
	if err := s.stopAll(); err != nil {
		return fmt.Errorf("localkube.Stop: %w", err)
	}
	s.started = false
	return nil
}

// Shutdown stops the servers of dir, whoever started them; a no-op when
// none runs.
func Shutdown(ctx context.Context, dir string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("localkube.Shutdown: %w", err)
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unlock, err := lock(ctx, dir, io.Discard)
	if err != nil {
		return fmt.Errorf("localkube.Shutdown: %w", err)
	}
	defer unlock()
	s := &Server{dir: dir, logger: logger}
	if err := s.stopAll(); err != nil {
		return fmt.Errorf("localkube.Shutdown: %w", err)
	}
	return nil
}

// freePort picks a TCP port on 127.0.0.1 that is free now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("picking a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
