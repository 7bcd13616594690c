package main

import (
	"context"
	"path/filepath"
	"time"

	"github.com/packline/packline/internal/fleet"
)

// roles is packline's production roles running as separate processes.
type roles struct {
	procs []*fleet.Process
}

// startFleet starts every production role of bin with env, each on its own
// loopback ports and log file in dir, and waits until every /readyz
// answers 200. On error it stops what it started.
func startFleet(ctx context.Context, bin string, env []string, dir string) (*roles, error) {
	f := &roles{}
	for _, role := range fleet.ProductionRoles {
		p, err := fleet.Start(fleet.RoleSpec{Bin: bin, Role: role, Env: env, LogPath: filepath.Join(dir, role+".log")})
		if err != nil {
			f.stop()
			return nil, err
		}
		f.procs = append(f.procs, p)
	}
	for _, p := range f.procs {
		if err := p.WaitReady(ctx, 60*time.Second); err != nil {
			f.stop()
			return nil, err
		}
	}
	return f, nil
}

// stop sends every role SIGTERM, waits for it to exit, and kills (by pid)
// one that has not exited after 15 s.
func (f *roles) stop() []error {
	errs := fleet.StopAll(f.procs, 15*time.Second)
	f.procs = nil
	return errs
}

// exitedEarly reports a role that has exited while the benchmark runs.
func (f *roles) exitedEarly() error { return fleet.ExitedEarly(f.procs) }

// api is the API role's base URL.
func (f *roles) api() string {
	for _, p := range f.procs {
		if p.Role == "api" {
			return "http://" + p.APIAddr
		}
	}
	return ""
}

// cpu is each role's CPU time so far.
func (f *roles) cpu() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, p := range f.procs {
		if d, err := processCPU(p.Pid()); err == nil {
			out[p.Role] = d
		}
	}
	return out
}

// peakRSS is each role's high-water resident set in MiB.
func (f *roles) peakRSS() map[string]Num {
	out := map[string]Num{}
	for _, p := range f.procs {
		if v, err := peakRSS(p.Pid()); err == nil {
			out[p.Role] = Num(v)
		}
	}
	return out
}

// logErrors counts the error-level lines in each role's log.
func (f *roles) logErrors() map[string]int {
	out := map[string]int{}
	for _, p := range f.procs {
		if n := fleet.LogErrors(p.LogPath)[p.LogPath]; n > 0 {
			out[p.Role] = n
		}
	}
	return out
}
