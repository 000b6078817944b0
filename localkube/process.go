package localkube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The servers, in the order they start (and the reverse of the order they stop).
var servers = []string{"etcd", "kube-apiserver"}

// spawn starts bin/name detached from the caller (its own session, output to
// dir/name.log) and records its pid. The channel receives its exit, as long
// as this process lives to see it.
func (s *Server) spawn(bin, name string, args []string) (<-chan error, error) {
	log, err := os.Create(s.logFile(name))
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own descriptor
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Dir = s.dir
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	s.logger.Info("localkube: starting "+name, "dir", s.dir)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	if err := os.WriteFile(s.pidFile(name), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it if it dies while we live
	return exited, nil
}

func (s *Server) pidFile(name string) string { return filepath.Join(s.dir, name+".pid") }
func (s *Server) logFile(name string) string { return filepath.Join(s.dir, name+".log") }

// running reports whether both servers run.
func (s *Server) running() bool {
	for _, name := range servers {
		if _, ok := s.pid(name); !ok {
			return false
		}
	}
	return true
}

// pid is the process named in dir/name.pid if it is alive and is that
// program (a stale pid file may name a reused pid).
func (s *Server) pid(name string) (int, bool) {
	b, err := os.ReadFile(s.pidFile(name))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	exe, _, _ := bytes.Cut(cmdline, []byte{0}) // empty for a zombie
	if filepath.Base(string(exe)) != name {
		return 0, false
	}
	return pid, true
}

// stopAll stops kube-apiserver, then etcd: SIGTERM, then SIGKILL after 30 s.
func (s *Server) stopAll() error {
	var errs []error
	for i := len(servers) - 1; i >= 0; i-- {
		name := servers[i]
		if pid, ok := s.pid(name); ok {
			s.logger.Info("localkube: stopping "+name, "dir", s.dir, "pid", pid)
			errs = append(errs, s.stopProcess(name, pid))
		}
		if err := os.Remove(s.pidFile(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Server) stopProcess(name string, pid int) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping %s (pid %d): %w", name, pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := s.pid(name); !ok {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.logger.Warn("localkube: "+name+" ignored SIGTERM for 30 s: killing it", "pid", pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing %s (pid %d): %w", name, pid, err)
	}
	return nil
}

// logTail is the end of name's log, for error messages.
func (s *Server) logTail(name string) string {
	b, err := os.ReadFile(s.logFile(name))
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return "\n--- " + s.logFile(name) + " (tail) ---\n" + string(b)
}

// lock takes an exclusive flock on dir/lock, waiting for other processes
// until ctx is done; it tells w once if it has to wait.
func lock(ctx context.Context, dir string, w io.Writer) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		if !told {
			fmt.Fprintf(w, "localkube: waiting for another process holding %s\n", f.Name())
			told = true
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", f.Name(), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
