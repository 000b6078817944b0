package localkube

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// The versions that build/go.mod pins (TestVersionsMatchBuildModule keeps
// them in step). They name the cache directory, so a change of version
// builds anew and never reuses binaries of another.
const (
	KubernetesVersion = "v1.37.2"
	EtcdVersion       = "v3.7.0"
)

// The two programs, as go build names them in build/go.mod's tool block.
var programs = []struct{ name, pkg string }{
	{"kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"},
	{"etcd", "go.etcd.io/etcd/server/v3"},
}

// complete marks a cache directory whose binaries were all built: the build
// writes it last, so a killed build is never mistaken for a finished one.
const complete = ".complete"

// BinDir is the directory that holds (or will hold) the etcd and
// kube-apiserver binaries: $BROKKR_KUBE_BIN when set (binaries provided by
// the user, never built), else brokkr/kube/<versions> under the user's cache
// directory ($XDG_CACHE_HOME, else ~/.cache), shared by every clone on the
// machine.
func BinDir() (string, error) {
	if dir := os.Getenv("BROKKR_KUBE_BIN"); dir != "" {
		return filepath.Abs(dir)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("localkube: no cache directory (set XDG_CACHE_HOME or BROKKR_KUBE_BIN): %w", err)
	}
	return filepath.Join(cache, "brokkr", "kube", "kubernetes-"+KubernetesVersion+"-etcd-"+EtcdVersion), nil
}

// FindBinaries returns BinDir if it holds both binaries, else an error that
// says how to get them.
func FindBinaries() (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	if os.Getenv("BROKKR_KUBE_BIN") == "" {
		if _, err := os.Stat(filepath.Join(dir, complete)); err != nil {
			return "", fmt.Errorf("kube-apiserver %s and etcd %s are not built yet in %s: run `make kube` (once per machine; it builds them from the Go module proxy) or set BROKKR_KUBE_BIN to a directory holding kube-apiserver and etcd", KubernetesVersion, EtcdVersion, dir)
		}
	}
	for _, p := range programs {
		if fi, err := os.Stat(filepath.Join(dir, p.name)); err != nil || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("localkube: %s holds no executable %s", dir, p.name)
		}
	}
	return dir, nil
}

// Build makes sure the binaries exist, building them once from the module in
// buildModule (the repository's localkube/build) when they do not. It tells
// progress what it is doing: the build takes minutes. Several processes may
// call it at once: one builds, the others wait for it and reuse its result.
func Build(ctx context.Context, buildModule string, progress io.Writer) (string, error) {
	if dir, err := FindBinaries(); err == nil {
		fmt.Fprintf(progress, "localkube: kube-apiserver %s and etcd %s already built in %s\n", KubernetesVersion, EtcdVersion, dir)
		return dir, nil
	}
	if os.Getenv("BROKKR_KUBE_BIN") != "" {
		return FindBinaries()
	}
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("localkube.Build: %w", err)
	}
	unlock, err := lock(ctx, filepath.Dir(dir), progress)
	if err != nil {
		return "", fmt.Errorf("localkube.Build: %w", err)
	}
	defer unlock()
	if dir, err := FindBinaries(); err == nil { // another process built them while we waited
		return dir, nil
	}
	if err := build(ctx, buildModule, dir, progress); err != nil {
		return "", fmt.Errorf("localkube.Build: %w", err)
	}
	return FindBinaries()
}

// build compiles both programs into a temporary directory beside dir and
// renames it to dir when everything is there.
func build(ctx context.Context, module, dir string, progress io.Writer) error {
	module, err := filepath.Abs(module)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(module, "go.mod")); err != nil {
		return fmt.Errorf("no build module at %s: %w", module, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".build-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	fmt.Fprintf(progress, "localkube: building kube-apiserver %s and etcd %s into %s\n"+
		"localkube: once per machine; about 8 minutes on 2 cores (module download, then ~2,000 packages)\n",
		KubernetesVersion, EtcdVersion, dir)
	fmt.Fprintln(progress, "localkube: downloading modules (go mod download)")
	if out, err := goCommand(ctx, module, "mod", "download").CombinedOutput(); err != nil {
		return fmt.Errorf("go mod download in %s: %w\n%s", module, err, out)
	}
	total := countPackages(ctx, module)
	var done atomic.Int64
	stop := reportProgress(progress, &done, total, start)
	defer stop()
	for _, p := range programs {
		if err := compile(ctx, module, p.pkg, filepath.Join(tmp, p.name), &done); err != nil {
			return err
		}
	}
	stop()
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp made it private
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, complete), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil { // a partial directory of an older layout
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	fmt.Fprintf(progress, "localkube: built in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// ldflags stamp the version kube-apiserver reports (and bases its
// compatibility version on), as Kubernetes' own build scripts do, and drop
// the symbol tables (a third of the size; the binaries are never debugged).
func ldflags() string {
	minor := strings.Split(KubernetesVersion, ".")[1]
	v := "k8s.io/component-base/version"
	return strings.Join([]string{
		"-s", "-w",
		"-X", v + ".gitVersion=" + KubernetesVersion,
		"-X", v + ".gitMajor=1",
		"-X", v + ".gitMinor=" + minor,
		"-X", v + ".gitTreeState=clean",
	}, " ")
}

// compile runs go build -v for one program, counting the packages it
// compiles (go build -v prints each one's import path to stderr).
func compile(ctx context.Context, module, pkg, out string, done *atomic.Int64) error {
	cmd := goCommand(ctx, module, "build", "-v", "-trimpath", "-ldflags", ldflags(), "-o", out, pkg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	var tail []string // go's own messages (errors), for the error
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if strings.ContainsAny(line, " :") { // not an import path
			tail = append(tail, line)
			if len(tail) > 40 {
				tail = tail[1:]
			}
			continue
		}
		done.Add(1)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, strings.Join(tail, "\n"))
	}
	return nil
}

// countPackages is the number of packages both programs depend on (a
// progress denominator; 0 if go list fails, which only makes progress vaguer).
func countPackages(ctx context.Context, module string) int {
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}"}
	for _, p := range programs {
		args = append(args, p.pkg)
	}
	out, err := goCommand(ctx, module, args...).Output()
	if err != nil {
		return 0
	}
	return strings.Count(string(out), "\n")
}

// reportProgress prints a line every 20 seconds until stop is called.
func reportProgress(w io.Writer, done *atomic.Int64, total int, start time.Time) (stop func()) {
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(20 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				of := ""
				if total > 0 {
					of = fmt.Sprintf(" of ~%d", total)
				}
				fmt.Fprintf(w, "localkube: compiled %d%s packages (%s)\n", done.Load(), of, time.Since(start).Round(time.Second))
			}
		}
	}()
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			close(quit)
			<-finished
		}
	}
}

// goCommand runs the go command in the build module with the caller's
// environment, less settings of the main module that do not apply there.
func goCommand(ctx context.Context, module string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, goBinary(), args...)
	cmd.Dir = module
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0")
	return cmd
}

// goBinary is $GO when set (as the Makefile passes it), else go on PATH.
func goBinary() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// ModuleDir is localkube/build under the repository root, the nearest
// directory above the working directory holding a go.mod of the main module.
func ModuleDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "localkube", "build"), nil
}

// RepoRoot is the nearest directory at or above the working directory whose
// go.mod declares the main module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/brokkr/brokkr\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("localkube: the brokkr repository (its go.mod) is not above the working directory")
		}
		dir = parent
	}
}
