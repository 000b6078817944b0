// Package localpg runs the embedded default PostgreSQL: a private cluster that
// brokkr creates, starts and stops itself from the PostgreSQL server binaries
// installed on the machine, so that a new user gets a working broker (and a
// working test suite) without configuring a database (DESIGN §6).
//
// A cluster lives in one directory:
//
//	dir/lock          flock guarding initialisation, start and stop
//	dir/users         flock held shared by every process using the server
//	dir/port          the TCP port, chosen once at initialisation
//	dir/postgres.log  the server log
//	dir/pgdata/       the data directory (initdb), with brokkr.conf included
//
// The server listens on 127.0.0.1 only, with trust authentication for the
// superuser "postgres", and puts its unix socket inside the data directory, so
// it never touches a system cluster (port 5432, /var/run/postgresql).
//
// Binaries are taken from $BROKKR_PG_BIN (a directory) if set, else pg_ctl and
// initdb on $PATH, else the highest version under /usr/lib/postgresql/*/bin.
//
// PostgreSQL refuses to run as root. When the caller is root, the cluster
// directory is handed to the system user "postgres" and initdb and pg_ctl run
// as that user; any parent directory of dir that user could not traverse gets
// o+x added (search permission only, never read).
//
// Several processes may call [Start] on the same directory at once (parallel
// test binaries, brokers sharing a data directory): the first one initialises
// and starts the server, the others find it running and just connect. Each
// holds a shared flock on dir/users while it uses the server; the kernel drops
// it when the process ends, however it ends. [Cluster.Stop] stops the server
// when no other process uses it (it is the last user), so a broker never stops
// the server under another live one, and the last one out stops it.
//
// A [Start] that finds the server running with no live user (its broker was
// killed or crashed: kill -9, or the terminal closed under an older brokkr)
// takes it over, says so in the log, and its Stop stops it.
//
// Detached clusters (Options.Detached: the test cluster) are meant to outlive
// the process that starts them: their Stop never stops the server, and they
// never take one over; [Shutdown] stops a server whoever uses it.
package localpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the name of the cluster's superuser role.
const Superuser = "postgres"

// Options tune a cluster. The zero value is right for a broker's data.
type Options struct {
	// NoSync trades durability for speed: initdb --no-sync, and fsync,
	// synchronous_commit and full_page_writes off. Only for throwaway
	// clusters (tests). It takes effect when the cluster is created.
	NoSync bool
	// Detached leaves the server running after this process, for whoever
	// comes next (the test cluster, which `testpg stop` ends): Stop never
	// stops it, and a running server is shared, never taken over.
	Detached bool
}

// Cluster is a running local PostgreSQL server.
type Cluster struct {
	dir     string
	port    int
	bin     string
	run     *runAs
	logger  *slog.Logger
	started bool // this Cluster started the server (rather than finding it running)

	detached bool
	users    *os.File // holds a shared flock on dir/users while this Cluster uses the server
}

// Start is StartWith with default Options.
func Start(ctx context.Context, dir string, logger *slog.Logger) (*Cluster, error) {
	return StartWith(ctx, dir, logger, Options{})
}

// StartWith makes sure a server is running for the cluster in dir, creating
// the cluster if dir holds none, and returns a handle to it.
func StartWith(ctx context.Context, dir string, logger *slog.Logger, opts Options) (*Cluster, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("localpg.Start: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localpg.Start: %w", err)
	}
	unlock, err := lock(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("localpg.Start: %w", err)
	}
	defer unlock()

	c := &Cluster{dir: dir, logger: logger, detached: opts.Detached}
	if err := c.start(ctx, opts); err != nil {
		c.leave()
		return nil, fmt.Errorf("localpg.Start %s: %w", dir, err)
	}
	return c, nil
}

func (c *Cluster) pgdata() string  { return filepath.Join(c.dir, "pgdata") }
func (c *Cluster) logFile() string { return filepath.Join(c.dir, "postgres.log") }

func (c *Cluster) start(ctx context.Context, opts Options) error {
	run, err := currentRunAs()
	if err != nil {
		return err
	}
	c.run = run
	version, _ := os.ReadFile(filepath.Join(c.pgdata(), "PG_VERSION"))
	c.bin, err = FindBinaries(strings.TrimSpace(string(version)))
	if err != nil {
		return err
	}
	if err := c.run.prepare(c.dir, c.logger); err != nil {
		return err
	}

	if len(version) == 0 {
		if err := c.initdb(ctx, opts); err != nil {
			return err
		}
	}
	if c.port, err = readPort(c.dir); err != nil {
		return err
	}
	alone, err := c.join()
	if err != nil {
		return err
	}
	if pid, ok := runningPID(c.pgdata()); ok {
		if alone && !c.detached {
			c.logger.Warn("localpg: PostgreSQL was left running by a process that is gone (killed or crashed); taking it over: it will be stopped on exit",
				"dir", c.dir, "pid", pid, "port", c.port)
		} else {
			c.logger.Debug("localpg: reusing running server", "dir", c.dir, "pid", pid, "port", c.port, "other users", !alone)
		}
		return c.ping(ctx)
	}

	c.logger.Info("localpg: starting PostgreSQL", "dir", c.dir, "port", c.port, "bin", c.bin)
	out, err := c.command(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", c.pgdata(), "-l", c.logFile())
	if err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s%s", err, out, c.logTail())
	}
	c.started = true
	return c.ping(ctx)
}

// initdb creates the cluster: the data directory, the port file and
// brokkr.conf. A failed initialisation leaves no data directory behind.
func (c *Cluster) initdb(ctx context.Context, opts Options) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	// initdb refuses a non-empty directory: clear what a failed attempt left.
	if err := os.RemoveAll(c.pgdata()); err != nil {
		return err
	}
	args := []string{
		"-D", c.pgdata(), "-U", Superuser, "--encoding=UTF8", "--locale=C",
		"--auth-local=trust", "--auth-host=trust",
	}
	if opts.NoSync {
		args = append(args, "--no-sync")
	}
	c.logger.Info("localpg: creating PostgreSQL cluster", "dir", c.dir, "port", port, "bin", c.bin)
	if out, err := c.command(ctx, "initdb", args...); err != nil {
		_ = os.RemoveAll(c.pgdata())
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	conf := fmt.Sprintf(`# Written by brokkr (localpg) when the cluster was created.
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '.'	# relative to the data directory
max_connections = 200
`, port)
	if opts.NoSync {
		conf += "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
	}
	err = errors.Join(
		c.run.writeFile(filepath.Join(c.pgdata(), "brokkr.conf"), conf),
		appendFile(filepath.Join(c.pgdata(), "postgresql.conf"), "\ninclude 'brokkr.conf'\n"),
		c.run.writeFile(filepath.Join(c.dir, "port"), strconv.Itoa(port)+"\n"),
	)
	if err != nil {
		_ = os.RemoveAll(c.pgdata())
		return err
	}
	return nil
}

// URL is a postgres:// URL for the database dbname on this cluster, as the
// superuser, for pgx.
func (c *Cluster) URL(dbname string) string {
	return URL(c.port, dbname)
}

// URL is the connection URL for dbname on a localpg server listening on port.
func URL(port int, dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Started reports whether this Cluster started the server (rather than
// finding it running), so that nobody else can be using it yet.
func (c *Cluster) Started() bool { return c.started }

// Port is the TCP port the server listens on.
func (c *Cluster) Port() int { return c.port }

// EnsureDatabase creates the database name unless it exists.
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("localpg.EnsureDatabase: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("localpg.EnsureDatabase: %w", err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) && pgErr.SQLState() == "42P04" { // duplicate_database: lost a race, fine
		return nil
	}
	if err != nil {
		return fmt.Errorf("localpg.EnsureDatabase: %w", err)
	}
	return nil
}

// Stop ends this Cluster's use of the server and stops the server (fast
// shutdown: open sessions are disconnected) if no other process uses it,
// whoever started it. A detached Cluster never stops it. Stop is
// idempotent.
func (c *Cluster) Stop() error {
	if c.users == nil {
		return nil
	}
	ctx := context.Background()
	unlock, err := lock(ctx, c.dir)
	if err != nil {
		return fmt.Errorf("localpg.Stop: %w", err)
	}
	defer unlock()
	last := c.leave()
	if c.detached {
		return nil
	}
	if !last {
		c.logger.Info("localpg: leaving PostgreSQL running: another process still uses it", "dir", c.dir)
		return nil
	}
	if err := c.stop(ctx); err != nil {
		return fmt.Errorf("localpg.Stop: %w", err)
	}
	return nil
}

// join registers this Cluster as a user of the server (a shared flock on
// dir/users, which the kernel releases when the process ends, however it
// ends) and reports whether it is the only one. Callers hold dir/lock, so
// no other process joins or leaves meanwhile.
func (c *Cluster) join() (alone bool, err error) {
	f, err := os.OpenFile(filepath.Join(c.dir, "users"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return false, err
	}
	alone = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
	// Downgrade (or take) the shared lock; others hold shared locks only.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return false, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	c.users = f
	return alone, nil
}

// leave ends this Cluster's use of the server and reports whether it was
// the last user. Callers hold dir/lock (or failed to start).
func (c *Cluster) leave() (last bool) {
	if c.users == nil {
		return false
	}
	// Upgrading to exclusive succeeds only when no other process holds the
	// file shared; a failed upgrade may drop our lock, which we give up anyway.
	last = syscall.Flock(int(c.users.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
	_ = c.users.Close()
	c.users = nil
	return last
}

func (c *Cluster) stop(ctx context.Context) error {
	if _, ok := runningPID(c.pgdata()); !ok {
		return nil
	}
	c.logger.Info("localpg: stopping PostgreSQL", "dir", c.dir)
	if out, err := c.command(ctx, "pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", c.pgdata()); err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Shutdown stops the server of the cluster in dir, whoever started it. It is
// a no-op when dir holds no running server.
func Shutdown(ctx context.Context, dir string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("localpg.Shutdown: %w", err)
	}
	c := &Cluster{dir: dir, logger: logger}
	if _, ok := runningPID(c.pgdata()); !ok {
		return nil
	}
	unlock, err := lock(ctx, dir)
	if err != nil {
		return fmt.Errorf("localpg.Shutdown: %w", err)
	}
	defer unlock()
	if c.run, err = currentRunAs(); err != nil {
		return fmt.Errorf("localpg.Shutdown: %w", err)
	}
	version, _ := os.ReadFile(filepath.Join(c.pgdata(), "PG_VERSION"))
	if c.bin, err = FindBinaries(strings.TrimSpace(string(version))); err != nil {
		return fmt.Errorf("localpg.Shutdown: %w", err)
	}
	if err := c.stop(ctx); err != nil {
		return fmt.Errorf("localpg.Shutdown: %w", err)
	}
	return nil
}

// ping waits until the server accepts connections.
func (c *Cluster) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server in %s not accepting connections on port %d: %w%s", c.dir, c.port, err, c.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// command runs a PostgreSQL binary (as the cluster's user) and returns its
// combined output.
func (c *Cluster) command(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir // the postgres user may not be able to read the caller's cwd
	cmd.Env = pgEnv()
	c.run.apply(cmd)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// pgEnv is the environment without libpq/server variables that could
// redirect initdb or pg_ctl to another cluster.
func pgEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// logTail is the end of the server log, for error messages.
func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.logFile())
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\n--- " + c.logFile() + " (tail) ---\n" + string(b)
}

// FindBinaries returns the directory holding pg_ctl and initdb. If version
// (a major version such as "15") is not empty, binaries of that version are
// preferred, and other versions are an error.
func FindBinaries(version string) (string, error) {
	var candidates []string
	if dir := os.Getenv("BROKKR_PG_BIN"); dir != "" {
		if !hasBinaries(dir) {
			return "", fmt.Errorf("BROKKR_PG_BIN=%s holds no pg_ctl and initdb", dir)
		}
		candidates = append(candidates, dir)
	} else {
		if version != "" && hasBinaries(filepath.Join("/usr/lib/postgresql", version, "bin")) {
			return filepath.Join("/usr/lib/postgresql", version, "bin"), nil
		}
		if p, err := exec.LookPath("pg_ctl"); err == nil {
			if p, err = filepath.EvalSymlinks(p); err == nil && hasBinaries(filepath.Dir(p)) {
				candidates = append(candidates, filepath.Dir(p))
			}
		}
		candidates = append(candidates, installedBinaries()...)
	}
	if len(candidates) == 0 {
		return "", errors.New("PostgreSQL server binaries not found; run `make deps` or install the postgresql package (or set BROKKR_PG_BIN to the directory holding pg_ctl and initdb)")
	}
	if version == "" {
		return candidates[0], nil
	}
	for _, dir := range candidates {
		if binaryVersion(dir) == version {
			return dir, nil
		}
	}
	return "", fmt.Errorf("the cluster was created by PostgreSQL %s but the server binaries found (%s) are PostgreSQL %s; install PostgreSQL %s, set BROKKR_PG_BIN, or remove the cluster directory to recreate it",
		version, candidates[0], binaryVersion(candidates[0]), version)
}

// installedBinaries lists /usr/lib/postgresql/*/bin, highest version first.
func installedBinaries() []string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	type v struct {
		dir string
		n   float64
	}
	var vs []v
	for _, d := range dirs {
		n, err := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if err == nil && hasBinaries(d) {
			vs = append(vs, v{d, n})
		}
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].n > vs[j].n })
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.dir
	}
	return out
}

func hasBinaries(dir string) bool {
	for _, name := range []string{"pg_ctl", "initdb"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// binaryVersion is the major version of the pg_ctl in dir ("15"), or "".
func binaryVersion(dir string) string {
	out, err := exec.Command(filepath.Join(dir, "pg_ctl"), "--version").Output()
	if err != nil {
		return ""
	}
	// "pg_ctl (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)"
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return ""
	}
	major, _, _ := strings.Cut(f[2], ".")
	return major
}

func readPort(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "port"))
	if err != nil {
		return 0, fmt.Errorf("reading the port file: %w", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("port file: %w", err)
	}
	return port, nil
}

// freePort picks a TCP port on 127.0.0.1 that is free now (never 5432, the
// system cluster's).
func freePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("picking a port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if port != 5432 {
			return port, nil
		}
	}
}

// runningPID reports the postmaster of pgdata if its pid file names a live
// process that is a postgres (a stale pid file after a crash may name a
// reused pid).
func runningPID(pgdata string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0, false
	}
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && !bytes.Contains(cmdline, []byte("postgres")) {
		return 0, false
	}
	return pid, true
}

// lock takes an exclusive flock on dir/lock, waiting for other processes
// until ctx is done.
func lock(ctx context.Context, dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", f.Name(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func appendFile(name, s string) error {
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	return errors.Join(err, f.Close())
}

// runAs is the OS user that runs initdb and pg_ctl: nil means the caller.
type runAs struct {
	uid, gid uint32
	name     string
}

// currentRunAs is nil unless the caller is root, in which case the server
// runs as the system user "postgres".
func currentRunAs() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no %q user to run it as (install the postgresql package, or run as a normal user): %w", "postgres", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user postgres: %w", err)
	}
	return &runAs{uid: uint32(uid), gid: uint32(gid), name: u.Username}, nil
}

func (r *runAs) apply(cmd *exec.Cmd) {
	if r == nil {
		return
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: r.uid, Gid: r.gid}}
}

// prepare gives the cluster directory to the user and makes sure the user can
// reach it.
func (r *runAs) prepare(dir string, logger *slog.Logger) error {
	if r == nil {
		return nil
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Uid == r.uid && st.Gid == r.gid {
			if d.IsDir() && path != dir {
				return fs.SkipDir // already given away (the data directory)
			}
			return nil
		}
		return os.Lchown(path, int(r.uid), int(r.gid))
	})
	if err != nil {
		return fmt.Errorf("giving %s to user %s: %w", dir, r.name, err)
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*syscall.Stat_t)
		mode := info.Mode().Perm()
		ok := mode&0o001 != 0 ||
			(st != nil && st.Uid == r.uid && mode&0o100 != 0) ||
			(st != nil && st.Gid == r.gid && mode&0o010 != 0)
		if !ok {
			logger.Warn("localpg: adding o+x so that user postgres can reach the cluster", "dir", p)
			if err := os.Chmod(p, info.Mode()|0o001); err != nil {
				return fmt.Errorf("making %s traversable for user %s: %w", p, r.name, err)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// writeFile writes a small file owned by the cluster's user.
func (r *runAs) writeFile(name, content string) error {
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		return err
	}
	if r != nil {
		return os.Lchown(name, int(r.uid), int(r.gid))
	}
	return nil
}
