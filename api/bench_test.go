package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/auth"
	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/models"
)

// benchServer runs api.New over db with limits that do not get in the way,
// on a pool sized as server.go sizes the server's (database/sql keeps only
// 2 idle connections by default, so 8 concurrent clients would open and
// close a PostgreSQL connection per request).
func benchServer(b *testing.B, db *dbtest.DB) (*httptest.Server, string) {
	b.Helper()
	return benchServerWith(b, db, api.Config{})
}

// benchServerWith is benchServer with cfg (DB, Logger and the rate limit
// filled in); the admin key is returned by the first server of a database
// only.
func benchServerWith(b *testing.B, db *dbtest.DB, cfg api.Config) (*httptest.Server, string) {
	b.Helper()
	db.Bun.SetMaxOpenConns(40)
	db.Bun.SetMaxIdleConns(40)
	key, _, err := models.EnsureAdminKey(context.Background(), db.Bun) // "" when it exists
	if err != nil {
		b.Fatal(err)
	}
	cfg.DB, cfg.Logger, cfg.DefaultRateLimitPerMinute = db.Bun, slog.New(slog.NewTextHandler(io.Discard, nil)), -1
	h, err := api.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv, key
}

func benchPost(b *testing.B, client *http.Client, url, key string, body []byte) []byte {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		b.Error(err) // not Fatal: this also runs on worker goroutines
		return nil
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || bytes.Contains(out, []byte(`"errors"`)) {
		b.Errorf("%d %v %.300s", resp.StatusCode, err, out)
	}
	return out
}

// BenchmarkDashboardQuery: the nested dashboard query through HTTP, at two
// sizes: 20 generators × 10 stacks × 10 objects × 5 events (issue 3's
// shape, ~12,600 rows), and 4 × 4 × 4 × 4 (~370 rows: DESIGN §7 speaks of
// "hundreds of rows"), answered by the read planner (graph/readplan) and
// by gqlgen's executor alone (DisableReadPlanner), against the same rows
// read by hand-written SQL over the same pool, in two forms: the rows
// alone (handDashboard: scanned, nothing built), and a whole hand-written
// endpoint (handDashboardHandler: key check, the rows, the same JSON
// document encoded and sent over HTTP, checked equal to the GraphQL
// answer). All four are timed interleaved, read by read, so load from
// elsewhere on the machine falls on all of them alike. Per read: wall time
// (ns/read), Go CPU of this process, server and client (cpu-ns/read), and
// bytes allocated (B/read, runtime.MemStats; the client's reading of the
// answer included). Ratios: planner/executor, planner/sql (the rows
// alone), planner/sql+json (the hand-written endpoint).
func BenchmarkDashboardQuery(b *testing.B) {
	for _, n := range [][4]int{{20, 10, 10, 5}, {4, 4, 4, 4}} {
		b.Run(fmt.Sprintf("%dx%dx%dx%d", n[0], n[1], n[2], n[3]), func(b *testing.B) { benchDashboard(b, n[0], n[1], n[2], n[3]) })
	}
}

// benchCost is what reads cost, summed.
type benchCost struct {
	wall, cpu time.Duration
	bytes     uint64
}

// measure runs read once and adds its cost.
func (c *benchCost) measure(read func()) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	alloc := m.TotalAlloc
	start, cpu := time.Now(), processCPU()
	read()
	c.wall += time.Since(start)
	c.cpu += processCPU() - cpu
	runtime.ReadMemStats(&m)
	c.bytes += m.TotalAlloc - alloc
}

func benchDashboard(b *testing.B, g, s, o, e int) {
	db := dbtest.New(b)
	seedDashboard(b, db.Bun, g, s, o, e)
	srv, key := benchServer(b, db)
	exec, _ := benchServerWith(b, db, api.Config{DisableReadPlanner: true})
	body, _ := json.Marshal(map[string]any{"query": dashboardQuery, "variables": dashboardVars(g, s, o, e)})
	client := srv.Client()
	ctx := context.Background()
	sqlDB := db.Bun.DB
	hand := httptest.NewServer(handDashboardHandler(sqlDB, &auth.Authenticator{DB: db.Bun}, g, s, o, e))
	b.Cleanup(hand.Close)
	planned := func() []byte { return benchPost(b, client, srv.URL+"/query", key, body) }
	executed := func() []byte { return benchPost(b, client, exec.URL+"/query", key, body) }
	handGet := func() []byte { return benchPost(b, client, hand.URL, key, nil) }

	// Equal work: the three endpoints answer the same document, and the
	// planner the executor's bytes.
	if p, x := planned(), executed(); !bytes.Equal(p, x) {
		b.Fatalf("the planner answers other bytes than the executor:\nplanner  %.600s\nexecutor %.600s", p, x)
	}
	var gql, hj any
	if err := json.Unmarshal(planned(), &gql); err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(handGet(), &hj); err != nil {
		b.Fatal(err)
	}
	if !reflect.DeepEqual(gql, hj) {
		g, _ := json.Marshal(gql)
		h, _ := json.Marshal(hj)
		b.Fatalf("hand-written endpoint answers another document:\ngraphql %.600s\nhand    %.600s", g, h)
	}
	for range 3 { // warm all paths
		planned()
		executed()
		handDashboard(b, ctx, sqlDB, g, s, o, e)
		handGet()
	}

	b.ResetTimer()
	var plan, ex, rows, endpoint benchCost
	n := 0
	for range b.N {
		plan.measure(func() { planned() })
		b.StopTimer()
		ex.measure(func() { executed() })
		rows.measure(func() { n = handDashboard(b, ctx, sqlDB, g, s, o, e) })
		endpoint.measure(func() { handGet() })
		b.StartTimer()
	}
	// generators, stacks, their labels and annotations (one each), objects,
	// events, and the one agent behind the events.
	if n != g+3*g*s+g*s*o+g*s*o*e+1 {
		b.Fatalf("hand-written SQL read %d rows", n)
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) }
	for _, m := range []struct {
		name string
		c    benchCost
	}{{"planner", plan}, {"executor", ex}, {"sql", rows}, {"sql+json", endpoint}} {
		b.ReportMetric(per(m.c.wall), m.name+"-ns/read")
		b.ReportMetric(per(m.c.cpu), m.name+"-cpu-ns/read")
		b.ReportMetric(float64(m.c.bytes)/float64(b.N), m.name+"-B/read")
	}
	b.ReportMetric(float64(plan.wall)/float64(ex.wall), "planner/executor")
	b.ReportMetric(float64(plan.cpu)/float64(ex.cpu), "planner/executor-cpu")
	b.ReportMetric(float64(plan.wall)/float64(rows.wall), "planner/sql")
	b.ReportMetric(float64(plan.wall)/float64(endpoint.wall), "planner/sql+json")
	b.ReportMetric(float64(plan.cpu)/float64(endpoint.cpu), "planner/sql+json-cpu")
}

// processCPU is the CPU time this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// handDashboard reads the dashboard's rows with one statement per level,
// as a careful hand-written data layer would; it returns the rows read.
func handDashboard(b *testing.B, ctx context.Context, db *sql.DB, g, s, o, e int) int {
	n := 0
	query := func(q string, args []any, dest func() []any, each func()) {
		rs, err := db.QueryContext(ctx, q, args...)
		if err != nil {
			b.Fatal(err)
		}
		defer rs.Close()
		for rs.Next() {
			if err := rs.Scan(dest()...); err != nil {
				b.Fatal(err)
			}
			n++
			each()
		}
		if err := rs.Err(); err != nil {
			b.Fatal(err)
		}
	}
	type row struct {
		id, parent, a, b, c string
		t1, t2              sql.NullTime
		i                   int64
		f                   bool
		total               int
	}
	var r row
	var gens, stacks, objs, agents []string
	agentSet := map[string]bool{}
	query(`SELECT id, name, is_active, last_active_at, count(*) OVER () FROM generators WHERE deleted_at IS NULL ORDER BY created_at, id LIMIT $1`,
		[]any{g + 1}, func() []any { return []any{&r.id, &r.a, &r.f, &r.t1, &r.total} }, func() { gens = append(gens, r.id) })
	query(`SELECT id, generator_id, name, total FROM (SELECT s.*, count(*) OVER w AS total, row_number() OVER (w ORDER BY created_at, id) AS rn
		FROM stacks AS s WHERE generator_id = ANY($1::uuid[]) AND deleted_at IS NULL WINDOW w AS (PARTITION BY generator_id)) AS x WHERE rn <= $2`,
		[]any{gens, s + 1}, func() []any { return []any{&r.id, &r.parent, &r.a, &r.total} }, func() { stacks = append(stacks, r.id) })
	query(`SELECT stack_id, label FROM stack_labels WHERE stack_id = ANY($1::uuid[]) ORDER BY stack_id, label`,
		[]any{stacks}, func() []any { return []any{&r.parent, &r.a} }, func() {})
	query(`SELECT stack_id, key, value FROM stack_annotations WHERE stack_id = ANY($1::uuid[]) ORDER BY stack_id, key`,
		[]any{stacks}, func() []any { return []any{&r.parent, &r.a, &r.b} }, func() {})
	query(`SELECT id, stack_id, sequence_id, yaml_checksum, is_deletion_marker, submitted_at, total FROM (
		SELECT d.*, count(*) OVER w AS total, row_number() OVER (w ORDER BY sequence_id DESC) AS rn
		FROM deployment_objects AS d WHERE stack_id = ANY($1::uuid[]) AND deleted_at IS NULL WINDOW w AS (PARTITION BY stack_id)) AS x WHERE rn <= $2`,
		[]any{stacks, o + 1}, func() []any { return []any{&r.id, &r.parent, &r.i, &r.a, &r.f, &r.t1, &r.total} }, func() { objs = append(objs, r.id) })
	query(`SELECT id, deployment_object_id, agent_id, event_type, status, message, created_at, total FROM (
		SELECT e.*, count(*) OVER w AS total, row_number() OVER (w ORDER BY created_at DESC, id) AS rn
		FROM agent_events AS e WHERE deployment_object_id = ANY($1::uuid[]) AND deleted_at IS NULL WINDOW w AS (PARTITION BY deployment_object_id)) AS x WHERE rn <= $2`,
		[]any{objs, e + 1}, func() []any { return []any{&r.id, &r.parent, &r.c, &r.a, &r.b, &r.b, &r.t1, &r.total} }, func() {
			if !agentSet[r.c] {
				agentSet[r.c] = true
				agents = append(agents, r.c)
			}
		})
	query(`SELECT id, name, cluster_name FROM agents WHERE id = ANY($1::uuid[])`,
		[]any{agents}, func() []any { return []any{&r.id, &r.a, &r.b} }, func() {})
	return n
}

// BenchmarkCreateDeploymentObject: createDeploymentObject through HTTP
// (generator key: authentication, scope check, YAML validation, checksum,
// the insert and its triggers) against a raw pgx INSERT of the same row
// (DESIGN §7: at least half the raw throughput). http/raw = raw time / HTTP
// time for the same number of objects = HTTP throughput as a fraction of
// raw, with one client and with benchWorkers concurrent clients.
func BenchmarkCreateDeploymentObject(b *testing.B) {
	db := dbtest.New(b)
	srv, admin := benchServer(b, db)
	client, url := srv.Client(), srv.URL+"/query"
	mk := func(q string, vars map[string]any) map[string]any {
		body, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
		var r struct{ Data map[string]any }
		if err := json.Unmarshal(benchPost(b, client, url, admin, body), &r); err != nil {
			b.Fatal(err)
		}
		return r.Data
	}
	d := mk(`mutation { createGenerator(input: {name: "bench"}) { apiKey } }`, nil)
	genKey := str(d, "createGenerator", "apiKey")
	body, _ := json.Marshal(map[string]any{"query": `mutation { createStack(input: {name: "http"}) { id } }`})
	var sr struct{ Data map[string]any }
	_ = json.Unmarshal(benchPost(b, client, url, genKey, body), &sr)
	httpStack := str(sr.Data, "createStack", "id")
	body, _ = json.Marshal(map[string]any{"query": `mutation { createStack(input: {name: "raw"}) { id } }`})
	_ = json.Unmarshal(benchPost(b, client, url, genKey, body), &sr)
	rawStack := str(sr.Data, "createStack", "id")

	ctx := context.Background()
	yaml := func(i int) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  version: \"%d\"\n", i)
	}
	mutation := `mutation($in: CreateDeploymentObjectInput!) { createDeploymentObject(input: $in) { id sequenceId yamlChecksum } }`
	viaHTTP := func(i int) {
		body, _ := json.Marshal(map[string]any{"query": mutation, "variables": map[string]any{"in": map[string]any{"stackId": httpStack, "yamlContent": yaml(i)}}})
		benchPost(b, client, url, genKey, body)
	}
	pool, err := pgxpool.New(ctx, db.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	raw := func(i int) {
		y := yaml(i)
		sum := sha256.Sum256([]byte(y))
		var id string
		var seq int64
		if err := pool.QueryRow(ctx, `INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum) VALUES ($1, $2, $3) RETURNING id, sequence_id`,
			rawStack, y, hex.EncodeToString(sum[:])).Scan(&id, &seq); err != nil {
			b.Error(err)
		}
	}
	// Serial (one client) and concurrent (benchWorkers clients; the pool
	// and the HTTP server both serve them in parallel). HTTP and raw take
	// turns in rounds of benchRound objects, so load from elsewhere on the
	// machine falls on both alike.
	var httpSerial, httpPar, rawSerial, rawPar time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += benchRound {
		n := min(benchRound, b.N-done)
		at := func(op func(int)) func(int) { return func(i int) { op(done + i) } }
		httpSerial += timeOps(n, 1, at(viaHTTP))
		httpPar += timeOps(n, benchWorkers, at(viaHTTP))
		b.StopTimer()
		rawSerial += timeOps(n, 1, at(raw))
		rawPar += timeOps(n, benchWorkers, at(raw))
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(httpSerial.Nanoseconds())/float64(b.N), "http-ns/object")
	b.ReportMetric(float64(rawSerial.Nanoseconds())/float64(b.N), "raw-ns/object")
	b.ReportMetric(float64(httpPar.Nanoseconds())/float64(b.N), "http-8c-ns/object")
	b.ReportMetric(float64(rawPar.Nanoseconds())/float64(b.N), "raw-8c-ns/object")
	b.ReportMetric(float64(rawSerial)/float64(httpSerial), "http/raw-serial")
	b.ReportMetric(float64(rawPar)/float64(httpPar), "http/raw-8clients")
}

// benchRound is how many objects each side creates before the other's turn.
const benchRound = 50

const benchWorkers = 8

// timeOps runs op(0..n-1) on workers goroutines and returns the wall time.
func timeOps(n, workers int, op func(i int)) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				op(i)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}
