package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/packline/packline/internal/fleet"
)

// roleLayout is the fleet the suite runs: two workers and two relays, one
// api and one scheduler, each its own process with its own ops port.
var roleLayout = []struct{ name, role string }{
	{"api", "api"}, {"worker-1", "worker"}, {"worker-2", "worker"},
	{"relay-1", "relay"}, {"relay-2", "relay"}, {"scheduler", "scheduler"},
}

// roles runs the fleet and restarts what the faults kill. A role that
// exits when no fault killed it is noted (a violation) and started again,
// so the run goes on.
type roles struct {
	bin string
	env []string

	mu      sync.Mutex
	procs   map[string]*fleet.Process
	killing map[string]bool
	crashes []string // roles that exited by themselves
	stopped bool
	wg      sync.WaitGroup
}

func startRoles(ctx context.Context, bin string, env []string, dir string) (*roles, error) {
	f := &roles{bin: bin, env: env, procs: map[string]*fleet.Process{}, killing: map[string]bool{}}
	for _, r := range roleLayout {
		p, err := fleet.Start(fleet.RoleSpec{Bin: bin, Role: r.role, Env: env, LogPath: filepath.Join(dir, r.name+".log")})
		if err != nil {
			f.stop()
			return nil, err
		}
		f.procs[r.name] = p
	}
	for _, r := range roleLayout {
		if err := f.procs[r.name].WaitReady(ctx, 90*time.Second); err != nil {
			f.stop()
			return nil, fmt.Errorf("%s: %w", r.name, err)
		}
	}
	for _, r := range roleLayout {
		f.watch(ctx, r.name, f.procs[r.name])
	}
	return f, nil
}

// watch notes and restarts a role that exits without being killed.
func (f *roles) watch(ctx context.Context, name string, p *fleet.Process) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		<-p.Exited()
		f.mu.Lock()
		if f.stopped || f.killing[name] || f.procs[name] != p {
			f.mu.Unlock()
			return
		}
		f.crashes = append(f.crashes, fmt.Sprintf("%s exited by itself (%v) at %s; its log: %s", name, p.Err(), time.Now().Format(time.TimeOnly), p.LogPath))
		f.mu.Unlock()
		time.Sleep(time.Second)
		f.restart(ctx, name)
	}()
}

func (f *roles) restart(ctx context.Context, name string) error {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return nil
	}
	old := f.procs[name]
	p, err := fleet.Start(old.Spec(f.bin, f.env))
	if err != nil {
		f.mu.Unlock()
		return err
	}
	f.procs[name] = p
	f.killing[name] = false
	f.mu.Unlock()
	f.watch(ctx, name, p)
	return p.WaitReady(ctx, 2*time.Minute)
}

// kill SIGKILLs the roles, waits for them to exit, and, unless down is
// set, starts them again at once (on the same ports) and waits until they
// are ready.
func (f *roles) kill(ctx context.Context, down time.Duration, names ...string) error {
	var ps []*fleet.Process
	f.mu.Lock()
	for _, n := range names {
		f.killing[n] = true
		ps = append(ps, f.procs[n])
	}
	f.mu.Unlock()
	for _, p := range ps {
		p.Kill()
	}
	if down > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(down):
		}
	}
	var first error
	for _, n := range names {
		if err := f.restart(ctx, n); err != nil && first == nil {
			first = fmt.Errorf("restart %s: %w", n, err)
		}
	}
	return first
}

func (f *roles) api() string { return "http://" + f.procs["api"].APIAddr }

func (f *roles) crashed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.crashes...)
}

func (f *roles) list() []*fleet.Process {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fleet.Process
	for _, r := range roleLayout {
		if p := f.procs[r.name]; p != nil {
			out = append(out, p)
		}
	}
	return out
}

// stop ends every role (SIGTERM, SIGKILL after 15 s).
func (f *roles) stop() []error {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	errs := fleet.StopAll(f.list(), 15*time.Second)
	f.wg.Wait()
	return errs
}

// logErrors counts each role's error-level log lines, by role name.
func (f *roles) logErrors() map[string]int {
	out := map[string]int{}
	for _, p := range f.list() {
		if n := fleet.LogErrors(p.LogPath)[p.LogPath]; n > 0 {
			out[strings.TrimSuffix(filepath.Base(p.LogPath), ".log")] = n
		}
	}
	return out
}
