package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// productionRoles are the Procfile's long-running roles, one process each.
var productionRoles = []string{"api", "worker", "relay", "scheduler"}

// process is one running packline role.
type process struct {
	role    string
	cmd     *exec.Cmd
	opsAddr string
	apiAddr string // api only
	logPath string
	exited  chan struct{}
	err     error // set before exited is closed
}

// fleet is packline's production roles running as separate processes.
type fleet struct {
	procs []*process
}

// buildPackline builds ./cmd/packline of the current tree into dir.
func buildPackline(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "packline")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/packline")
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/packline (run from the repository root, or pass -packline PATH): %w\n%s", err, out)
	}
	return bin, nil
}

// runPackline runs one packline command to completion and returns its
// standard output.
func runPackline(ctx context.Context, bin string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("packline %s: %w\n%s", strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	return stdout.String(), nil
}

// startFleet starts every production role of bin with env, each on its own
// loopback ports and log file in dir, and waits until every /readyz
// answers 200. On error it stops what it started.
func startFleet(ctx context.Context, bin string, env []string, dir string) (*fleet, error) {
	f := &fleet{}
	for _, role := range productionRoles {
		p, err := startRole(bin, role, env, dir)
		if err != nil {
			f.stop()
			return nil, err
		}
		f.procs = append(f.procs, p)
	}
	for _, p := range f.procs {
		if err := p.waitReady(ctx, 60*time.Second); err != nil {
			f.stop()
			return nil, err
		}
	}
	return f, nil
}

func startRole(bin, role string, env []string, dir string) (*process, error) {
	opsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &process{role: role, opsAddr: opsAddr, logPath: filepath.Join(dir, role+".log"), exited: make(chan struct{})}
	env = append(env[:len(env):len(env)], "PACKLINE_OPS_ADDR="+opsAddr)
	if role == "api" {
		if p.apiAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		env = append(env, "PACKLINE_HTTP_ADDR="+p.apiAddr)
	}
	logf, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, role)
	p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = env, logf, logf
	// Its own process group, so a Ctrl-C at the terminal reaches only the
	// benchmark, which stops the roles in order; and killed with the
	// benchmark should the benchmark itself be killed.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start packline %s: %w", role, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitReady polls the role's /readyz until it answers 200.
func (p *process) waitReady(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		res, err := http.Get("http://" + p.opsAddr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("packline %s exited during start-up (%v); its log, %s:\n%s", p.role, p.err, p.logPath, p.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("packline %s not ready after %s; its log, %s:\n%s", p.role, d, p.logPath, p.logTail())
		}
	}
}

func (p *process) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	return tail(string(b), 3000)
}

// stop sends every role SIGTERM, waits for it to exit, and kills (by pid)
// one that has not exited after 15 s.
func (f *fleet) stop() []error {
	for _, p := range f.procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	var errs []error
	for _, p := range f.procs {
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
			errs = append(errs, fmt.Errorf("packline %s did not stop within 15 s of SIGTERM: killed (pid %d)", p.role, p.cmd.Process.Pid))
			continue
		}
		var ee *exec.ExitError
		if p.err != nil && !(errors.As(p.err, &ee) && ee.ExitCode() == 0) {
			errs = append(errs, fmt.Errorf("packline %s stopped with %v; see %s", p.role, p.err, p.logPath))
		}
	}
	f.procs = nil
	return errs
}

// exitedEarly reports a role that has exited while the benchmark runs.
func (f *fleet) exitedEarly() error {
	for _, p := range f.procs {
		select {
		case <-p.exited:
			return fmt.Errorf("packline %s exited mid-run (%v); its log, %s:\n%s", p.role, p.err, p.logPath, p.logTail())
		default:
		}
	}
	return nil
}

// api is the API role's base URL.
func (f *fleet) api() string {
	for _, p := range f.procs {
		if p.role == "api" {
			return "http://" + p.apiAddr
		}
	}
	return ""
}

// cpu is each role's CPU time so far.
func (f *fleet) cpu() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, p := range f.procs {
		if d, err := processCPU(p.cmd.Process.Pid); err == nil {
			out[p.role] = d
		}
	}
	return out
}

// peakRSS is each role's high-water resident set in MiB.
func (f *fleet) peakRSS() map[string]Num {
	out := map[string]Num{}
	for _, p := range f.procs {
		if v, err := peakRSS(p.cmd.Process.Pid); err == nil {
			out[p.role] = Num(v)
		}
	}
	return out
}

// logErrors counts the error-level lines in each role's log.
func (f *fleet) logErrors() map[string]int {
	out := map[string]int{}
	for _, p := range f.procs {
		fh, err := os.Open(p.logPath)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"level":"ERROR"`) {
				out[p.role]++
			}
		}
		fh.Close()
	}
	return out
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
