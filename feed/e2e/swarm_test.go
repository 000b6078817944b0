package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
)

// TestMain lets this test binary act as a swarm of websocket agents for
// BenchmarkWebsocketServerSide (FEED_SWARM_URL set): the clients then live in
// another process, so the server's memory and CPU are measured alone.
func TestMain(m *testing.M) {
	if os.Getenv("FEED_SWARM_URL") != "" {
		os.Exit(swarm())
	}
	os.Exit(m.Run())
}

const swarmQuery = `subscription { agentDeploymentObjects(after: 0) { sequenceId yamlContent } }`

// swarm connects one websocket per key (FEED_SWARM_KEYS, a file), subscribes
// each to its feed, prints READY once every subscription has received the
// warm-up object, then for FEED_SWARM_ROUNDS objects whose content is
// "t: <commit unix nanos>" records commit-to-receipt latency, printing
// "GOT <round>" once every client has an object, and at the end
// "LAT <p50 ms> <p99 ms> <max ms> <CPU ms of this process over the rounds>".
func swarm() int {
	url := os.Getenv("FEED_SWARM_URL")
	raw, err := os.ReadFile(os.Getenv("FEED_SWARM_KEYS"))
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	keys := strings.Fields(string(raw))
	rounds, _ := strconv.Atoi(os.Getenv("FEED_SWARM_ROUNDS"))
	ctx := context.Background()
	sub, _ := json.Marshal(map[string]any{"query": swarmQuery})
	var mu sync.Mutex
	var lat []time.Duration
	var ready, done sync.WaitGroup
	roundGot := make([]atomic.Int64, rounds)
	ready.Add(len(keys))
	done.Add(len(keys))
	for _, key := range keys {
		conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{transportWS}})
		if err != nil {
			fmt.Println("ERR", err)
			return 1
		}
		p, _ := json.Marshal(map[string]any{"Authorization": "Bearer " + key})
		if err := wsjson.Write(ctx, conn, wsMsg{Type: "connection_init", Payload: p}); err != nil {
			fmt.Println("ERR", err)
			return 1
		}
		var ack wsMsg
		if err := wsjson.Read(ctx, conn, &ack); err != nil || ack.Type != "connection_ack" {
			fmt.Println("ERR init", ack.Type, err)
			return 1
		}
		if err := wsjson.Write(ctx, conn, wsMsg{ID: "f", Type: "subscribe", Payload: sub}); err != nil {
			fmt.Println("ERR", err)
			return 1
		}
		go func() {
			got := 0
			for {
				var m wsMsg
				if err := wsjson.Read(ctx, conn, &m); err != nil {
					return
				}
				switch m.Type {
				case "ping":
					_ = wsjson.Write(ctx, conn, wsMsg{Type: "pong"})
				case "next":
					now := time.Now()
					got++
					if got == 1 {
						ready.Done()
						continue
					}
					y := str(decode(m), "agentDeploymentObjects", "yamlContent")
					ns, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(y, "t:")), 10, 64)
					mu.Lock()
					lat = append(lat, now.Sub(time.Unix(0, ns)))
					mu.Unlock()
					if got-2 < rounds && roundGot[got-2].Add(1) == int64(len(keys)) {
						fmt.Println("GOT", got-1) // every client has round got-1
					}
					if got == rounds+1 {
						done.Done()
					}
				}
			}
		}()
	}
	ready.Wait()
	fmt.Println("READY")
	cpu0 := cpuTime()
	done.Wait()
	cpu := cpuTime() - cpu0
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("LAT %.3f %.3f %.3f %.3f\n", ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), ms(lat[len(lat)-1]), ms(cpu))
	return 0
}

// BenchmarkWebsocketServerSide: N agents on N websockets from a separate
// client process, one server (hub + API) in this process. Reports the
// server's memory per idle subscription (Go heap + goroutine stacks, and RSS)
// and p50/p99 from commit to receipt at the clients over b.N objects,
// committed one at a time (the next 100 ms after every client has the last),
// or with FEED_WS_PACE every PACE, whatever the delivery.
func BenchmarkWebsocketServerSide(b *testing.B) {
	sizes := benchSizes(1000, 10000)
	for _, n := range sizes {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) { benchServerSide(b, n) })
	}
}

func benchServerSide(b *testing.B, n int) {
	db := dbtest.New(b)
	db.Bun.SetMaxOpenConns(16)
	ctx := context.Background()
	stack, keys := seedAgents(b, db, n)
	insert := func(y string) {
		if _, err := db.Bun.ExecContext(ctx, `INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
			VALUES (?, ?, encode(sha256(convert_to(?, 'UTF8')), 'hex'))`, stack, y, y); err != nil {
			b.Fatal(err)
		}
	}
	s := startServer(b, db, feed.Options{})
	before := memNow()
	rounds := b.N
	// FEED_WS_PACE (a duration): commit an object every PACE regardless of
	// delivery (an offered load), instead of one object at a time.
	var pace time.Duration
	if p := os.Getenv("FEED_WS_PACE"); p != "" {
		var err error
		if pace, err = time.ParseDuration(p); err != nil {
			b.Fatal(err)
		}
	}
	line := startSwarm(b, s, keys, rounds)
	// Warm-up: one object, which every client gets (live, or replayed from
	// after: 0 if it subscribes later).
	insert("warm: up")
	if l := line(); l != "READY" {
		b.Fatalf("swarm: %s", l)
	}
	time.Sleep(500 * time.Millisecond)
	idle := memNow()
	stopProfile := profileServer(b, n)

	b.ResetTimer()
	start := time.Now()
	serverCPU0 := cpuTime()
	for i := 0; i < rounds; i++ {
		// The commit time travels in the content; the clients measure.
		insert(fmt.Sprintf("t: %d", time.Now().UnixNano()))
		s.hub.Published(ctx)
		if pace > 0 {
			time.Sleep(pace)
			continue
		}
		// One object at a time: the next is committed once every client
		// has this one, after a pause.
		if l := line(); l != fmt.Sprintf("GOT %d", i+1) {
			b.Fatalf("swarm: %q, want GOT %d", l, i+1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	l := line()
	for pace > 0 && strings.HasPrefix(l, "GOT ") {
		l = line()
	}
	r := serverSide{n: n, rounds: rounds, elapsed: time.Since(start), paced: pace > 0, before: before, idle: idle}
	b.StopTimer()
	stopProfile()
	r.serverCPU = cpuTime() - serverCPU0
	if _, err := fmt.Sscanf(l, "LAT %f %f %f %f", &r.p50, &r.p99, &r.max, &r.clientCPU); err != nil {
		b.Fatalf("swarm: %q", l)
	}
	r.report(b)
}

// startSwarm runs this test binary as the swarm of agents (one websocket
// per key) and returns a reader of the lines it prints.
func startSwarm(b *testing.B, s *server, keys []string, rounds int) (line func() string) {
	keyFile := b.TempDir() + "/keys"
	if err := os.WriteFile(keyFile, []byte(strings.Join(keys, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		"FEED_SWARM_URL=ws"+strings.TrimPrefix(s.url, "http")+"/query",
		"FEED_SWARM_KEYS="+keyFile,
		"FEED_SWARM_ROUNDS="+strconv.Itoa(rounds))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	return func() string {
		if !lines.Scan() {
			b.Fatalf("swarm ended: %v", lines.Err())
		}
		return lines.Text()
	}
}

// profileServer, with FEED_WS_PROFILE_DIR set, writes heap and goroutine
// profiles of the idle server and starts a CPU profile of the timed rounds,
// which the returned function stops.
func profileServer(b *testing.B, n int) (stop func()) {
	prof := os.Getenv("FEED_WS_PROFILE_DIR")
	if prof == "" {
		return func() {}
	}
	base := fmt.Sprintf("%s/conns=%d", prof, n)
	writeProfile(b, "heap", base+".heap", 0)
	writeProfile(b, "goroutine", base+".goroutines.txt", 1)
	f, err := os.Create(base + ".cpu")
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// serverSide is what one run of BenchmarkWebsocketServerSide measured.
type serverSide struct {
	n, rounds                int
	elapsed, serverCPU       time.Duration
	paced                    bool
	p50, p99, max, clientCPU float64 // ms, from the swarm
	before, idle             mem
}

func (r serverSide) report(b *testing.B) {
	if r.paced {
		// Offered load above what the machine delivers makes latency grow
		// with the number of rounds: report the delivery rate too.
		b.ReportMetric(float64(r.n*r.rounds)/r.elapsed.Seconds(), "deliveries/s")
	}
	// Both processes share the machine's cores: CPU per object, each side.
	b.ReportMetric(float64(r.serverCPU.Milliseconds())/float64(r.rounds), "server-cpu-ms/obj")
	b.ReportMetric(r.clientCPU/float64(r.rounds), "client-cpu-ms/obj")
	b.ReportMetric(r.p50, "p50-ms")
	b.ReportMetric(r.p99, "p99-ms")
	b.ReportMetric(float64(int64(r.idle.heap)-int64(r.before.heap))/float64(r.n), "server-heap-B/sub")
	b.ReportMetric(float64(int64(r.idle.stack)-int64(r.before.stack))/float64(r.n), "server-stack-B/sub")
	b.ReportMetric(float64(r.idle.goroutines-r.before.goroutines)/float64(r.n), "goroutines/sub")
	if d := int64(r.idle.rss) - int64(r.before.rss); d > 0 {
		b.ReportMetric(float64(d)/float64(r.n), "server-rss-B/sub")
	}
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

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type mem struct {
	heap, stack, rss uint64
	goroutines       int
}

func memNow() mem {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := mem{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			m.rss = pages * uint64(os.Getpagesize())
		}
	}
	return m
}
