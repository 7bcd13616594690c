// Package fleet runs packline's production roles as separate processes, the
// way the Procfile starts them, and plays the clients that talk to them: the
// API client, the sandbox courier's signed callbacks, and a watcher of order
// states. The fleet benchmark (cmd/packline-bench) and the chaos suite
// (cmd/packline-chaos) are built on it.
package fleet

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

// ProductionRoles are the Procfile's long-running roles.
var ProductionRoles = []string{"api", "worker", "relay", "scheduler"}

// Build builds ./cmd/packline of the current tree into dir.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "packline")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/packline")
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/packline (run from the repository root, or pass -packline PATH): %w\n%s", err, out)
	}
	return bin, nil
}

// Run runs one packline command to completion and returns its standard
// output.
func Run(ctx context.Context, bin string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("packline %s: %w\n%s", strings.Join(args, " "), err, Tail(stderr.String(), 2000))
	}
	return stdout.String(), nil
}

// Process is one running packline role.
type Process struct {
	Role    string
	OpsAddr string
	APIAddr string // api only
	LogPath string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // set before exited is closed
}

// RoleSpec says how to start a role: its binary, role, environment, log
// file (appended to, so a restarted role keeps one log) and loopback
// addresses (empty: a free port).
type RoleSpec struct {
	Bin, Role string
	Env       []string
	LogPath   string
	OpsAddr   string
	APIAddr   string // api only
}

// Start starts the role in its own process group, killed with its parent.
func Start(s RoleSpec) (*Process, error) {
	var err error
	if s.OpsAddr == "" {
		if s.OpsAddr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	p := &Process{Role: s.Role, OpsAddr: s.OpsAddr, LogPath: s.LogPath, exited: make(chan struct{})}
	env := append(s.Env[:len(s.Env):len(s.Env)], "PACKLINE_OPS_ADDR="+s.OpsAddr)
	if s.Role == "api" {
		if s.APIAddr == "" {
			if s.APIAddr, err = FreeAddr(); err != nil {
				return nil, err
			}
		}
		p.APIAddr = s.APIAddr
		env = append(env, "PACKLINE_HTTP_ADDR="+s.APIAddr)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(s.Bin, s.Role)
	p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = env, logf, logf
	// Its own process group, so a Ctrl-C at the terminal reaches only the
	// caller, which stops the roles in order; and killed with the caller
	// should the caller itself be killed.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start packline %s: %w", s.Role, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// Spec is the RoleSpec that starts this role again, on the same addresses.
func (p *Process) Spec(bin string, env []string) RoleSpec {
	return RoleSpec{Bin: bin, Role: p.Role, Env: env, LogPath: p.LogPath, OpsAddr: p.OpsAddr, APIAddr: p.APIAddr}
}

// Pid is the role's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the role's process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process ended; valid once Exited is closed.
func (p *Process) Err() error { return p.err }

// FreeAddr is a loopback address with a port nothing listens on now.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// WaitReady polls the role's /readyz until it answers 200.
func (p *Process) WaitReady(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		res, err := c.Get("http://" + p.OpsAddr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("packline %s exited during start-up (%v); its log, %s:\n%s", p.Role, p.err, p.LogPath, p.LogTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("packline %s not ready after %s; its log, %s:\n%s", p.Role, d, p.LogPath, p.LogTail())
		}
	}
}

// LogTail is the end of the role's log.
func (p *Process) LogTail() string {
	b, _ := os.ReadFile(p.LogPath)
	return Tail(string(b), 3000)
}

// Kill sends the role SIGKILL and waits for it to exit.
func (p *Process) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop sends the role SIGTERM, waits for it to exit, and kills it (by pid)
// if it has not exited after grace. The error says what went wrong: killed,
// or a non-zero exit.
func (p *Process) Stop(grace time.Duration) error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	return p.waitStopped(grace)
}

func (p *Process) waitStopped(grace time.Duration) error {
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("packline %s did not stop within %s of SIGTERM: killed (pid %d)", p.Role, grace, p.cmd.Process.Pid)
	}
	var ee *exec.ExitError
	if p.err != nil && !(errors.As(p.err, &ee) && ee.ExitCode() == 0) {
		return fmt.Errorf("packline %s stopped with %v; see %s", p.Role, p.err, p.LogPath)
	}
	return nil
}

// StopAll sends every role SIGTERM at once, then waits for each as Stop does.
func StopAll(procs []*Process, grace time.Duration) []error {
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	var errs []error
	for _, p := range procs {
		if err := p.waitStopped(grace); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// ExitedEarly reports a role that has exited while it should run.
func ExitedEarly(procs []*Process) error {
	for _, p := range procs {
		select {
		case <-p.exited:
			return fmt.Errorf("packline %s exited mid-run (%v); its log, %s:\n%s", p.Role, p.err, p.LogPath, p.LogTail())
		default:
		}
	}
	return nil
}

// Env is base without any packline setting (PACKLINE_*, LOG_*,
// DATABASE_URL, REDIS_URL), followed by set.
func Env(base []string, set ...string) []string {
	var env []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PACKLINE_") || k == "DATABASE_URL" || k == "REDIS_URL" || strings.HasPrefix(k, "LOG_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, set...)
}

// EnvValue is the value of key in env.
func EnvValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// Tail is the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// LogErrors counts the error-level lines (LOG_FORMAT=json) of each log.
func LogErrors(paths ...string) map[string]int {
	out := map[string]int{}
	for _, path := range paths {
		fh, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"level":"ERROR"`) {
				out[path]++
			}
		}
		fh.Close()
	}
	return out
}
