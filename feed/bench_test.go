package feed_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/models"
)

// BenchmarkWakeupWritePath measures what each wake-up mechanism costs the
// write path: small transactions (one deployment object each, through the
// same database/sql pool bun uses) from 8 concurrent writers.
//
//   - raw: the insert alone (already serialized by the sequence lock), with
//     the NOTIFY trigger of migration 0003 dropped;
//   - trigger: with that trigger (pg_notify inside the write transaction);
//   - trigger+hub: the trigger, plus a hub with a subscriber reading every
//     object and Published after each commit: what runs in production;
//   - notify-after-commit: no trigger; one pg_notify transaction after each
//     commit (as an API calling NOTIFY after its mutation would);
//   - poll-only+hub: no trigger; a hub finding objects by its 500ms poll.
//
// Disk latency on a shared machine drifts a lot, so the modes run
// interleaved: each iteration is four rounds of 500 inserts per mode, each
// mode on its own database of the same cluster; the figures are the totals.
func BenchmarkWakeupWritePath(b *testing.B) {
	modes := []string{"raw", "trigger", "trigger+hub", "notify-after-commit", "poll-only+hub"}
	if m := os.Getenv("FEED_BENCH_MODES"); m != "" {
		modes = strings.Split(m, ",")
	}
	setups := map[string]*wakeupSetup{}
	for _, mode := range modes {
		setups[mode] = newWakeupSetup(b, mode)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range 4 {
			for _, mode := range modes {
				setups[mode].round(b)
			}
		}
	}
	b.StopTimer()
	for _, mode := range modes {
		st := setups[mode]
		b.ReportMetric(float64(st.n)/st.busy.Seconds(), mode+"-tx/s")
	}
}

// wakeupSetup is one mode of BenchmarkWakeupWritePath on its own database.
type wakeupSetup struct {
	mode string
	db   *dbtest.DB
	h    *feed.Hub
	s    uuid.UUID
	busy time.Duration
	n    int
}

func newWakeupSetup(b *testing.B, mode string) *wakeupSetup {
	db := dbtest.New(b)
	f := newFixture(b, db)
	db.Bun.SetMaxOpenConns(16)
	st := &wakeupSetup{mode: mode, db: db, s: f.stack(f.generator())}
	if mode != "trigger" && mode != "trigger+hub" {
		f.exec("DROP TRIGGER deployment_objects_feed_notify ON deployment_objects")
	}
	if strings.HasSuffix(mode, "+hub") {
		st.h, _ = startHub(b, db, feed.Options{})
		// A subscriber, so the hub does its real work on each wake-up.
		a := f.agent(true)
		f.target(a, st.s)
		ch, _, err := st.h.AgentDeploymentObjects(bg, agentScope(a), uuid.Nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for range ch {
			}
		}()
	}
	return st
}

const wakeupWriters, wakeupPerRound = 8, 500

// round inserts wakeupPerRound objects from wakeupWriters writers, each
// insert its own transaction, with the mode's wake-up.
func (st *wakeupSetup) round(b *testing.B) {
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range wakeupWriters {
		wg.Go(func() {
			for next.Add(1) <= wakeupPerRound {
				if err := st.write(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st.busy += time.Since(start)
	st.n += wakeupPerRound
}

// write is one insert and the mode's wake-up.
func (st *wakeupSetup) write() error {
	const insert = `INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
	           VALUES ($1, $2, encode(sha256(convert_to($2, 'UTF8')), 'hex'))`
	y := "n: " + strconv.FormatInt(time.Now().UnixNano(), 10)
	if _, err := st.db.Bun.DB.ExecContext(bg, insert, st.s, y); err != nil {
		return err
	}
	switch st.mode {
	case "notify-after-commit":
		_, err := st.db.Bun.DB.ExecContext(bg, "SELECT pg_notify('brokkr_public', 'd')")
		return err
	case "trigger+hub":
		st.h.Published(bg)
	}
	return nil
}

// BenchmarkFanout: N agent subscriptions on one hub, all targeting one stack;
// each iteration commits one deployment object and waits until every
// subscriber has it. Reports p50/p99 from commit to receipt, and memory per
// idle subscription (hub side, and with a reader goroutine per subscription
// as the websocket layer has).
func BenchmarkFanout(b *testing.B) {
	sizes := []int{1000, 10000}
	if s := os.Getenv("FEED_BENCH_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, _ := strconv.Atoi(f)
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	db := dbtest.New(b)
	f := newFixture(b, db)
	db.Bun.SetMaxOpenConns(16)
	s := f.stack(f.generator())
	f.exec(`INSERT INTO agents (name, cluster_name, status) SELECT 'bench-' || i, 'c', 'ACTIVE' FROM generate_series(1, ?) i`, n)
	f.exec(`INSERT INTO agent_targets (agent_id, stack_id) SELECT id, ? FROM agents`, s)
	var ids []uuid.UUID
	f.scan(&ids, "SELECT id FROM agents ORDER BY name")
	h, _ := startHub(b, db, feed.Options{})

	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	memBefore := memNow()
	chans := subscribeAll(b, ctx, h, f, s, ids)
	memHub := memNow()
	// Readers, as the websocket layer has one goroutine per subscription.
	recvAt := make([]time.Time, n)
	var round atomic.Pointer[sync.WaitGroup]
	for i, ch := range chans {
		go func() {
			for range ch {
				recvAt[i] = time.Now()
				round.Load().Done()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	memReaders := memNow()

	var lat []time.Duration
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		wg := &sync.WaitGroup{}
		wg.Add(n)
		round.Store(wg)
		f.object(s)
		committed := time.Now()
		h.Published(bg)
		wg.Wait()
		for _, t := range recvAt {
			lat = append(lat, t.Sub(committed))
		}
	}
	b.StopTimer()
	reportFanout(b, lat, n, memBefore, memHub, memReaders)
}

// subscribeAll subscribes every agent (after 0) and waits until every
// subscription is answered and live: one object through all of them.
func subscribeAll(b *testing.B, ctx context.Context, h *feed.Hub, f *fixture, s uuid.UUID, ids []uuid.UUID) []<-chan *models.DeploymentObject {
	chans := make([]<-chan *models.DeploymentObject, len(ids))
	for i, id := range ids {
		ch, _, err := h.AgentDeploymentObjects(ctx, agentScope(id), uuid.Nil, ptr(int64(0)))
		if err != nil {
			b.Fatal(err)
		}
		chans[i] = ch
	}
	seq := f.object(s)
	h.Published(bg)
	for _, ch := range chans {
		select {
		case o := <-ch:
			if o.SequenceID != seq {
				b.Fatalf("got %d, want %d", o.SequenceID, seq)
			}
		case <-time.After(time.Minute):
			b.Fatal("warm-up object not delivered")
		}
	}
	return chans
}

func reportFanout(b *testing.B, lat []time.Duration, n int, before, hub, readers mem) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(hub.heap-before.heap)/float64(n), "hub-heap-B/sub")
	b.ReportMetric(float64(readers.heap+readers.stack-before.heap-before.stack)/float64(n), "heap+stack-B/sub")
	// RSS only grows reliably; a GC returning pages can make the delta
	// meaningless, in which case it is left out.
	if d := int64(readers.rss) - int64(before.rss); d > 0 {
		b.ReportMetric(float64(d)/float64(n), "rss-B/sub")
	}
}

type mem struct{ heap, stack, rss uint64 }

func memNow() mem {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := mem{heap: ms.HeapInuse, stack: ms.StackInuse}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		fields := strings.Fields(string(b))
		if len(fields) > 1 {
			pages, _ := strconv.ParseUint(fields[1], 10, 64)
			m.rss = pages * uint64(os.Getpagesize())
		}
	}
	return m
}
