package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// which is 100 on every Linux this runs on.
const clockTick = 10 * time.Millisecond

// processCPU is the CPU time (user + system) pid has used, from
// /proc/<pid>/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so the fields are counted after its last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc stat line %.40q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat line %.40q", b)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad utime/stime in /proc stat line %.40q", b)
	}
	return time.Duration(u+s) * clockTick, nil
}

// peakRSS is the process's high-water resident set (VmHWM) in MiB.
func peakRSS(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", v, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// pgCPU is the CPU time of each local PostgreSQL server process that works
// for one database, by pid.
type pgCPU map[int]time.Duration

// since is the CPU the processes of p used after start: for a process
// that was there at start, what it added; for a new one (a backend that
// connected since), all of it. A process that exited meanwhile took its
// CPU with it and counts for nothing, so the figure may fall short, but it
// never goes below zero.
func (p pgCPU) since(start pgCPU) time.Duration {
	var d time.Duration
	for pid, cpu := range p {
		if c := cpu - start[pid]; c > 0 {
			d += c
		}
	}
	return d
}

// postgresCPU reads the CPU time of the local PostgreSQL server processes
// that work for database dbname: its backends (their command line names
// the database) and the server's own helpers (checkpointer, WAL writer,
// autovacuum…), but not the backends of other databases. ok is false when
// no PostgreSQL process is visible (the server is on another machine).
func postgresCPU(dbname string) (procs pgCPU, ok bool) {
	procs = pgCPU{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(d + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		cmdline, _ := os.ReadFile(d + "/cmdline")
		if !servesDatabase(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})), dbname) {
			continue
		}
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		if cpu, err := parseStatCPU(b); err == nil {
			procs[pid] = cpu
			ok = true
		}
	}
	return procs, ok
}

// servesDatabase reports whether a postgres process title belongs to the
// work of dbname: a backend's title is "postgres: [cluster: ]USER DB HOST
// STATE"; every other title (postmaster, helpers) counts too.
func servesDatabase(title, dbname string) bool {
	rest, ok := strings.CutPrefix(strings.TrimSpace(title), "postgres: ")
	if !ok {
		return true // the postmaster: "/usr/lib/postgresql/15/bin/postgres -D …"
	}
	f := strings.Fields(rest)
	if len(f) > 0 && strings.HasSuffix(f[0], ":") {
		f = f[1:] // the cluster name
	}
	// A helper's title is its name ("checkpointer", "autovacuum launcher");
	// a backend's is user, database, client, state.
	if len(f) >= 3 && (strings.Contains(f[2], "(") || f[2] == "[local]") {
		return f[1] == dbname
	}
	return true
}
