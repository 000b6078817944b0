package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/brokkr/brokkr/dbtest"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// postgresCPU is the CPU time the database cluster has used so far: its
// postmaster's own, its running children's (backends, the checkpointer,
// ...) and its exited children's (cutime and cstime), read from /proc. -1
// when the cluster is not on this machine or its files cannot be read.
func postgresCPU(b testing.TB, db *dbtest.DB) time.Duration {
	var dir string
	if err := db.Bun.NewRaw(`SELECT setting FROM pg_settings WHERE name = 'data_directory'`).Scan(context.Background(), &dir); err != nil {
		return -1
	}
	raw, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return -1
	}
	postmaster := strings.SplitN(string(raw), "\n", 2)[0]
	own, ok := procStat(postmaster)
	if !ok {
		return -1
	}
	total := own[0] + own[1] + own[2] + own[3]
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil || e.Name() == postmaster {
			continue
		}
		if st, ok := procStat(e.Name()); ok && strconv.FormatInt(st[4], 10) == postmaster {
			total += st[0] + st[1]
		}
	}
	return time.Duration(total) * clockTick
}

// procStat reads a process's utime, stime, cutime, cstime and parent pid.
func procStat(pid string) ([5]int64, bool) {
	var out [5]int64
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return out, false
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')') // the command may hold spaces
	if i < 0 {
		return out, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return out, false
	}
	for j, field := range []int{14, 15, 16, 17, 4} {
		out[j], _ = strconv.ParseInt(f[field-3], 10, 64)
	}
	return out, true
}
