package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/brokkr/brokkr/dbtest"
)

// seedLabelledStacks makes n stacks under one generator, each with per
// labels out of a vocabulary of vocab ("l0" …), straight in SQL.
func seedLabelledStacks(b *testing.B, db *dbtest.DB, n, vocab, per int) {
	b.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO generators (name) VALUES ('seed')`,
		`INSERT INTO stacks (name, generator_id) SELECT 's' || i, (SELECT id FROM generators WHERE name = 'seed') FROM generate_series(1, ?) AS i`,
		`INSERT INTO stack_labels (stack_id, label)
			SELECT s.id, 'l' || ((substr(s.name, 2)::int + j) % ?) FROM stacks s, generate_series(0, ? - 1) AS j`,
		`ANALYZE stacks, stack_labels`,
	} {
		var args []any
		switch {
		case bytes.Contains([]byte(q), []byte("INTO stacks")):
			args = []any{n}
		case bytes.Contains([]byte(q), []byte("INTO stack_labels")):
			args = []any{vocab, per}
		}
		if _, err := db.Bun.ExecContext(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
	}
}

// labelFilterBody is a stacks query filtering on n labels (every third of
// the vocabulary, so few stacks have them all).
func labelFilterBody(n int) []byte {
	labels := make([]string, n)
	for i := range labels {
		labels[i] = fmt.Sprintf("l%d", 3*i)
	}
	body, _ := json.Marshal(map[string]any{
		"query":     `query($l: [String!]) { stacks(filter: {labels: $l}) { totalCount } }`,
		"variables": map[string]any{"l": labels},
	})
	return body
}

// postCode posts body and returns the first error code ("" on success).
func postCode(b *testing.B, client *http.Client, url, key string, body []byte) string {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		b.Error(err)
		return "TRANSPORT"
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var r struct {
		Errors []struct {
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(out, &r)
	if len(r.Errors) == 0 {
		return ""
	}
	code, _ := r.Errors[0].Extensions["code"].(string)
	return code
}

// BenchmarkLabelFilter: one stacks(filter: {labels}) request through HTTP
// over 3,000 stacks with 8 labels each (24,000 label rows, a vocabulary of
// 400), by filter length. Past the cap (100) the request is refused
// (BAD_USER_INPUT) before any SQL; the answer's code is reported once.
func BenchmarkLabelFilter(b *testing.B) {
	db := dbtest.New(b)
	seedLabelledStacks(b, db, 3000, 400, 8)
	srv, key := benchServer(b, db)
	client, url := srv.Client(), srv.URL+"/query"
	for _, n := range []int{1, 10, 100, 200} {
		body := labelFilterBody(n)
		b.Run(fmt.Sprintf("labels=%d", n), func(b *testing.B) {
			code := postCode(b, client, url, key, body)
			b.ResetTimer()
			for b.Loop() {
				postCode(b, client, url, key, body)
			}
			b.StopTimer()
			if code == "" {
				code = "served"
			}
			b.Logf("labels=%d: %s", n, code)
		})
	}
}

// BenchmarkViewerDuringLabelFloods: the latency of a { viewer { role } }
// request while 8 clients send label filters of the given length back to
// back (the starvation: 40 such requests took a 3 ms viewer to
// 15 s), and without them (labels=0). Reports the median and the worst
// viewer latency of b.N requests.
func BenchmarkViewerDuringLabelFloods(b *testing.B) {
	db := dbtest.New(b)
	seedLabelledStacks(b, db, 3000, 400, 8)
	srv, key := benchServer(b, db)
	client, url := srv.Client(), srv.URL+"/query"
	viewer, _ := json.Marshal(map[string]any{"query": `{ viewer { role } }`})
	for _, n := range []int{0, 100, 200} { // 0: no flood, the baseline
		b.Run(fmt.Sprintf("labels=%d", n), func(b *testing.B) {
			flood := labelFilterBody(n)
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for range min(n, 8) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						postCode(b, client, url, key, flood)
					}
				}()
			}
			time.Sleep(100 * time.Millisecond) // the floods are running
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				if code := postCode(b, client, url, key, viewer); code != "" {
					b.Errorf("viewer: %s", code)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			stop()
			wg.Wait()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "median-µs")
				b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
			}
		})
	}
}
