package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets this test binary act as a swarm of websocket agents for
// BenchmarkWebsocketServerSide (FEED_SWARM_URL set): the clients then live
// in another process, so the server's memory and CPU are measured alone.
func TestMain(m *testing.M) {
	if os.Getenv("FEED_SWARM_URL") != "" {
		os.Exit(swarmProcess())
	}
	os.Exit(m.Run())
}

// swarmTimeout bounds every wait of the swarm process.
const swarmTimeout = 3 * time.Minute

// swarmProcess connects one agent per key (FEED_SWARM_KEYS, a file),
// prints READY once every agent has its first object, then answers
// commands, one a line on stdin:
//
//	RESET        forget the objects received so far           → OK
//	WAIT k       every agent has k objects since the reset    → GOT k
//	STATS        commit-to-receipt latencies of "t: <unix ns>" objects and
//	             this process's CPU, since the last STATS      → LAT p50 p99 max cpu (ms)
//	STORM        drop every connection at once, reconnect all  → ACKED ms
//	CHECK s...   every agent has exactly these objects since
//	             the reset, in order (waits for them)           → CHECKED lost duplicated
//
// Anything that fails prints ERR and a reason.
func swarmProcess() int {
	raw, err := os.ReadFile(os.Getenv("FEED_SWARM_KEYS"))
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	s := newSwarm(os.Getenv("FEED_SWARM_URL"), strings.Fields(string(raw)))
	ctx := context.Background()
	if err := s.connectAll(ctx, 64); err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	if !waitFor(s.allHave(1)) {
		fmt.Println("ERR no first object")
		return 1
	}
	fmt.Println("READY")
	cpu0 := cpuTime()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 64<<20)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		fmt.Println(s.command(ctx, f, &cpu0))
	}
	return 0
}

// command runs one command of swarmProcess and returns its answer.
func (s *swarm) command(ctx context.Context, f []string, cpu0 *time.Duration) string {
	switch f[0] {
	case "RESET":
		s.reset()
		return "OK"
	case "WAIT":
		k, _ := strconv.Atoi(f[1])
		if !waitFor(s.allHave(k)) {
			return "ERR timeout waiting for " + f[1]
		}
		return "GOT " + f[1]
	case "STATS":
		lat := s.latencies()
		cpu := cpuTime() - *cpu0
		*cpu0 += cpu
		return fmt.Sprintf("LAT %.3f %.3f %.3f %.3f", quantile(lat, 0.5), quantile(lat, 0.99), quantile(lat, 1), float64(cpu.Microseconds())/1000)
	case "STORM":
		took, err := s.storm(ctx, 256)
		if err != nil {
			return "ERR " + err.Error()
		}
		return fmt.Sprintf("ACKED %.3f", float64(took.Microseconds())/1000)
	case "CHECK":
		want := make([]int64, 0, len(f)-1)
		for _, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			want = append(want, n)
		}
		waitFor(s.allHave(len(want)))
		lost, dup := s.check(want)
		return fmt.Sprintf("CHECKED %d %d", lost, dup)
	}
	return "ERR unknown command " + f[0]
}

func waitFor(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(swarmTimeout):
		return false
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
