package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
)

// BenchmarkWebsocketServerSide: N agents on N websockets from a separate
// client process (the swarm), one server (hub + API) in this process, run
// with serve's garbage-collector target (GOGC=200 unless GOGC is set).
// Each size is set up once and runs two benchmarks:
//   - fanout: b.N objects committed one at a time (the next 100 ms after
//     every agent has the last), or with FEED_WS_PACE every PACE whatever
//     the delivery; it reports p50/p99 from the commit to each receipt,
//     server CPU per object (and per delivery), and what an idle
//     subscription costs the server once its memory has settled
//     (settledMem): the live heap (live objects) + goroutine stacks, the
//     heap's spans in use, and the growth of the process's resident size;
//   - storm: every connection dropped at once and resumed with after while
//     objects are committed every 20 ms; it reports handshakes per second
//     (until every agent is acknowledged and subscribed again), server and
//     database CPU per handshake, and the objects lost and duplicated (it
//     fails unless both are 0).
//
// Both report load1, the machine's load average when they started.
func BenchmarkWebsocketServerSide(b *testing.B) {
	for _, n := range benchSizes(1000, 10000) {
		r := &serverRig{parent: b, n: n}
		b.Run(fmt.Sprintf("conns=%d/fanout", n), r.fanout)
		b.Run(fmt.Sprintf("conns=%d/storm", n), r.storm)
	}
}

// serverRig is one size's server, agents and swarm, made on first use and
// kept for the parent benchmark (a sub-benchmark's cleanups run after each
// of its runs).
type serverRig struct {
	parent *testing.B
	n      int
	once   sync.Once

	db          *dbtest.DB
	s           *server
	stack       string
	before      mem // the server before any connection
	idle        mem // with every subscription idle
	rounds      int // objects waited for since the swarm's reset
	line        func() string
	send        func(string)
	closeSwarm  func()
	setupFailed bool
}

func (r *serverRig) get(b *testing.B) *serverRig {
	r.once.Do(func() { r.setupFailed = true; r.setup(b); r.setupFailed = false })
	if r.setupFailed {
		b.Fatal("set-up failed")
	}
	return r
}

// setup seeds the agents, starts the server and the swarm (cleaned up with
// the parent benchmark), and measures the server before and idle.
func (r *serverRig) setup(sub *testing.B) {
	b := r.parent
	if os.Getenv("GOGC") == "" {
		old := debug.SetGCPercent(200) // serve's default
		b.Cleanup(func() { debug.SetGCPercent(old) })
	}
	r.db = dbtest.New(b)
	r.db.Bun.SetMaxOpenConns(16)
	var keys []string
	r.stack, keys = seedAgents(b, r.db, r.n)
	r.s = startServer(b, r.db, feed.Options{})
	r.before = memNow()
	r.startSwarm(keys)
	// Warm-up: one object, which every agent gets (live, or replayed from
	// after: 0 if it subscribes later).
	r.insert(sub, "warm: up")
	if l := r.line(); l != "READY" {
		sub.Fatalf("swarm: %s", l)
	}
	r.ask(sub, "RESET", "OK")
	time.Sleep(500 * time.Millisecond)
	r.idle = settledMem()
	profileIdle(sub, r.n)
}

// commit commits an object to the agents' stack and returns its sequence.
func (r *serverRig) commit(y string) (int64, error) {
	var seq int64
	err := r.db.Bun.NewRaw(`INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
		VALUES (?, ?, encode(sha256(convert_to(?, 'UTF8')), 'hex')) RETURNING sequence_id`, r.stack, y, y).Scan(context.Background(), &seq)
	r.s.hub.Published(context.Background())
	return seq, err
}

func (r *serverRig) insert(b *testing.B, y string) int64 {
	seq, err := r.commit(y)
	if err != nil {
		b.Fatal(err)
	}
	return seq
}

// ask sends a command to the swarm and checks its answer's first word.
func (r *serverRig) ask(b *testing.B, cmd, want string) string {
	r.send(cmd)
	l := r.line()
	if !strings.HasPrefix(l, want) {
		b.Fatalf("swarm: %s: %q, want %s", strings.Fields(cmd)[0], l, want)
	}
	return l
}

// startSwarm runs this test binary as the swarm of agents (one websocket
// per key).
func (r *serverRig) startSwarm(keys []string) {
	b := r.parent
	keyFile := b.TempDir() + "/keys"
	if err := os.WriteFile(keyFile, []byte(strings.Join(keys, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "FEED_SWARM_URL=ws"+strings.TrimPrefix(r.s.url, "http")+"/query", "FEED_SWARM_KEYS="+keyFile)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	r.line = func() string {
		if !lines.Scan() {
			return fmt.Sprintf("ERR the swarm ended: %v", lines.Err())
		}
		return lines.Text()
	}
	r.send = func(c string) { _, _ = io.WriteString(in, c+"\n") } // a swarm gone answers line's ERR
}

// fanout commits b.N objects and reports latencies, CPU and memory.
func (r *serverRig) fanout(b *testing.B) {
	r.get(b)
	load := loadAverage()
	pace := paceFromEnv(b)
	r.ask(b, "STATS", "LAT") // start the swarm's figures here
	stopProfile := profileCPU(b, r.n)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		r.insert(b, fmt.Sprintf("t: %d", time.Now().UnixNano())) // the commit time travels in the content
		if pace > 0 {
			time.Sleep(pace)
			continue
		}
		r.rounds++
		r.ask(b, fmt.Sprintf("WAIT %d", r.rounds), "GOT")
		time.Sleep(100 * time.Millisecond)
	}
	if pace > 0 {
		r.rounds += b.N
		r.ask(b, fmt.Sprintf("WAIT %d", r.rounds), "GOT")
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	stopProfile()
	var p50, p99, worst, clientCPU float64
	if _, err := fmt.Sscanf(r.ask(b, "STATS", "LAT"), "LAT %f %f %f %f", &p50, &p99, &worst, &clientCPU); err != nil {
		b.Fatal(err)
	}
	if pace > 0 {
		b.ReportMetric(float64(r.n*b.N)/elapsed.Seconds(), "deliveries/s")
	}
	b.ReportMetric(load, "load1")
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "server-cpu-ms/obj")
	b.ReportMetric(float64(cpu.Nanoseconds())/1000/float64(b.N*r.n), "server-cpu-µs/delivery")
	b.ReportMetric(clientCPU/float64(b.N), "client-cpu-ms/obj")
	r.reportMemory(b)
}

// reportMemory reports what an idle subscription costs the server.
func (r *serverRig) reportMemory(b *testing.B) {
	per := func(a, z uint64) float64 { return (float64(z) - float64(a)) / float64(r.n) }
	b.ReportMetric(per(r.before.live+r.before.stack, r.idle.live+r.idle.stack), "server-live+stack-B/sub")
	b.ReportMetric(per(r.before.live, r.idle.live), "server-live-heap-B/sub")
	b.ReportMetric(per(r.before.heap, r.idle.heap), "server-heap-inuse-B/sub")
	b.ReportMetric(per(r.before.stack, r.idle.stack), "server-stack-B/sub")
	b.ReportMetric(per(r.before.rss, r.idle.rss), "server-rss-B/sub")
	b.ReportMetric(float64(r.idle.goroutines-r.before.goroutines)/float64(r.n), "goroutines/sub")
}

func paceFromEnv(b *testing.B) time.Duration {
	p := os.Getenv("FEED_WS_PACE") // an offered load: an object every PACE
	if p == "" {
		return 0
	}
	pace, err := time.ParseDuration(p)
	if err != nil {
		b.Fatal(err)
	}
	return pace
}

// storm drops every agent's connection at once, b.N times, and checks
// that each resumes with exactly the objects it missed.
func (r *serverRig) storm(b *testing.B) {
	r.get(b)
	load := loadAverage()
	b.ResetTimer()
	var acked, caughtUp, cpu, dbCPU time.Duration
	for i := 0; i < b.N; i++ {
		a, c, sc, dc := r.oneStorm(b)
		acked, caughtUp, cpu, dbCPU = acked+a, caughtUp+c, cpu+sc, dbCPU+dc
	}
	b.StopTimer()
	n := float64(r.n * b.N)
	b.ReportMetric(load, "load1")
	b.ReportMetric(n/acked.Seconds(), "handshakes/s")
	b.ReportMetric(n/caughtUp.Seconds(), "resumed/s")
	b.ReportMetric(float64(cpu.Microseconds())/1000/n, "server-cpu-ms/handshake")
	if dbCPU >= 0 {
		b.ReportMetric(float64(dbCPU.Microseconds())/1000/n, "db-cpu-ms/handshake")
	}
}

// oneStorm is one storm: the time until every agent was acknowledged and
// subscribed again, until every agent had every object, and the server's
// and database's CPU meanwhile (the database's -1 when it cannot be read).
func (r *serverRig) oneStorm(b *testing.B) (acked, caughtUp, cpu, dbCPU time.Duration) {
	r.ask(b, "RESET", "OK")
	r.rounds = 0
	var seqs []int64
	var failed error
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { // an object every 20 ms while the storm lasts
		defer close(stopped)
		for i := 0; ; i++ {
			seq, err := r.commit(fmt.Sprintf("s: %d", i))
			if err != nil {
				failed = err
				return
			}
			seqs = append(seqs, seq)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	start, cpu0, db0 := time.Now(), cpuTime(), postgresCPU(b, r.db)
	var ms float64
	if _, err := fmt.Sscanf(r.ask(b, "STORM", "ACKED"), "ACKED %f", &ms); err != nil {
		b.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a few more objects after the last handshake
	close(stop)
	<-stopped
	if failed != nil {
		b.Fatal(failed)
	}
	var lost, dup int
	want := strings.Trim(fmt.Sprint(seqs), "[]")
	if _, err := fmt.Sscanf(r.ask(b, "CHECK "+want, "CHECKED"), "CHECKED %d %d", &lost, &dup); err != nil {
		b.Fatal(err)
	}
	caughtUp, cpu = time.Since(start), cpuTime()-cpu0
	dbCPU = -1
	if db0 >= 0 {
		dbCPU = postgresCPU(b, r.db) - db0
	}
	if lost != 0 || dup != 0 {
		b.Errorf("storm of %d over %d objects: %d lost, %d duplicated", r.n, len(seqs), lost, dup)
	}
	return time.Duration(ms * float64(time.Millisecond)), caughtUp, cpu, dbCPU
}

// profileIdle, with FEED_WS_PROFILE_DIR set, writes heap and goroutine
// profiles of the idle server.
func profileIdle(b *testing.B, n int) {
	if prof := os.Getenv("FEED_WS_PROFILE_DIR"); prof != "" {
		base := fmt.Sprintf("%s/conns=%d", prof, n)
		writeProfile(b, "heap", base+".heap", 0)
		writeProfile(b, "goroutine", base+".goroutines.txt", 1)
	}
}

// profileCPU, with FEED_WS_PROFILE_DIR set, starts a CPU profile of the
// timed rounds, which the returned function stops.
func profileCPU(b *testing.B, n int) (stop func()) {
	prof := os.Getenv("FEED_WS_PROFILE_DIR")
	if prof == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s/conns=%d.cpu", prof, n))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func writeProfile(b *testing.B, name, path string, debug int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup(name).WriteTo(f, debug); err != nil {
		b.Fatal(err)
	}
}

// mem is what the server process holds: the live heap (bytes of live
// objects after a collection), the heap's spans in use (live objects and
// the free room between them), goroutine stacks, and resident memory.
type mem struct {
	live, heap, stack, rss uint64
	goroutines             int
}

// settledMem is memNow once the runtime has given back what it will: the
// background scavenger returns freed memory to the system over some
// seconds, and an operator sees the resident size it settles at. It waits
// until the resident size has not fallen for three seconds (at most 40).
func settledMem() mem {
	m := memNow()
	for still, i := 0, 0; still < 3 && i < 40; i++ {
		time.Sleep(time.Second)
		next := memNow()
		if next.rss+next.rss/200 < m.rss {
			still = 0
		} else {
			still++
		}
		m = next
	}
	return m
}

func memNow() mem {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := mem{live: ms.HeapAlloc, heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			m.rss = pages * uint64(os.Getpagesize())
		}
	}
	return m
}

// loadAverage is the machine's one-minute load average (0 if unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
