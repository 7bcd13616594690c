package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"github.com/packline/packline/internal/fleet"
)

// pgBinDirs are where PostgreSQL's server programs are looked for when
// initdb is not on PATH (Debian and Ubuntu keep them out of it).
var pgBinDirs = []string{"/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin",
	"/usr/lib/postgresql/14/bin", "/usr/lib/postgresql/13/bin", "/usr/local/pgsql/bin"}

// tools finds initdb, pg_ctl and redis-server, or says what to install.
type tools struct {
	initdb, pgCtl, redisServer string
}

func findTools() (tools, error) {
	var t tools
	var missing []string
	look := func(name string, dirs []string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range dirs {
			if p := filepath.Join(d, name); isExecutable(p) {
				return p
			}
		}
		missing = append(missing, name)
		return ""
	}
	t.initdb = look("initdb", pgBinDirs)
	t.pgCtl = look("pg_ctl", []string{filepath.Dir(t.initdb)})
	t.redisServer = look("redis-server", nil)
	if len(missing) > 0 {
		return t, fmt.Errorf("the chaos suite starts its own PostgreSQL and Redis and needs %s: install PostgreSQL 13+ server programs "+
			"(Debian/Ubuntu: apt-get install postgresql; they live in /usr/lib/postgresql/<version>/bin) and Redis 6.2+ (apt-get install redis-server)",
			strings.Join(missing, ", "))
	}
	return t, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// postgres is a private PostgreSQL cluster: initdb in a folder of the
// run's own, listening on one loopback port, no unix socket.
type postgres struct {
	tools tools
	dir   string // the data directory
	log   string
	port  int
	cred  *syscall.Credential // PostgreSQL refuses to run as root: the postgres or nobody user then
}

// startPostgres makes a cluster in dir/pgdata and starts it.
func startPostgres(ctx context.Context, t tools, dir string) (*postgres, error) {
	pg := &postgres{tools: t, dir: filepath.Join(dir, "pgdata"), log: filepath.Join(dir, "postgres.log")}
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			return nil, err
		}
		pg.cred = cred
		// The server's user must reach its data directory and its log.
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(pg.log, nil, 0o644); err != nil {
			return nil, err
		}
		if err := os.Chown(pg.log, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(pg.dir, 0o700); err != nil {
		return nil, err
	}
	if pg.cred != nil {
		if err := os.Chown(pg.dir, int(pg.cred.Uid), int(pg.cred.Gid)); err != nil {
			return nil, err
		}
	}
	if out, err := pg.command(ctx, t.initdb, "-D", pg.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, fleet.Tail(string(out), 2000))
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	pg.port = port
	// The faults are process crashes and restarts, never the machine's: the
	// operating system keeps what PostgreSQL wrote, so fsync buys nothing
	// here and costs the 2-core machine a lot.
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\nmax_connections = 400\n"+
		"fsync = off\nfull_page_writes = off\nlog_min_messages = warning\n", port)
	f, err := os.OpenFile(filepath.Join(pg.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(conf)
	f.Close()
	if err != nil {
		return nil, err
	}
	if err := pg.ctl(ctx, "start"); err != nil {
		return nil, err
	}
	db, err := sql.Open("postgres", pg.url("postgres"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE packline"); err != nil {
		pg.stop()
		return nil, fmt.Errorf("create database packline: %w", err)
	}
	return pg, nil
}

// unprivileged is the user PostgreSQL runs as when the suite runs as root.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, and PostgreSQL refuses to: no postgres or nobody user to run it as")
}

func (pg *postgres) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
		cmd.Dir = "/"
	}
	return cmd
}

// ctl runs pg_ctl start or restart (fast: connections are cut, no
// recovery needed) and waits until the server accepts connections.
func (pg *postgres) ctl(ctx context.Context, action string) error {
	out, err := pg.command(ctx, pg.tools.pgCtl, "-D", pg.dir, "-l", pg.log, "-m", "fast", "-w", "-t", "120", action).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(pg.log)
		return fmt.Errorf("pg_ctl %s: %w\n%s\n%s", action, err, out, fleet.Tail(string(log), 2000))
	}
	return nil
}

func (pg *postgres) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.port, db)
}

// pid is the postmaster's pid, from postmaster.pid.
func (pg *postgres) pid() int {
	b, err := os.ReadFile(filepath.Join(pg.dir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// stop shuts the server down by its pid (SIGINT: fast shutdown), and kills
// it after 30 s.
func (pg *postgres) stop() error {
	pid := pg.pid()
	if pid <= 0 {
		return nil
	}
	return stopPid(pid, syscall.SIGINT, 30*time.Second)
}

// stopPid sends sig to pid and waits for it to be gone, with SIGKILL after
// grace.
func stopPid(pid int, sig syscall.Signal, grace time.Duration) error {
	if err := syscall.Kill(pid, sig); err != nil {
		return nil // gone already
	}
	deadline := time.Now().Add(grace)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			return fmt.Errorf("pid %d did not stop within %s: killed", pid, grace)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func freePort() (int, error) {
	a, err := fleet.FreeAddr()
	if err != nil {
		return 0, err
	}
	_, p, _ := net.SplitHostPort(a)
	return strconv.Atoi(p)
}

// redisServer is the run's own redis-server on one loopback port, with no
// persistence: a kill loses everything it held.
type redisServer struct {
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedis(ctx context.Context, t tools, dir string) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redisServer{bin: t.redisServer, dir: dir, port: port}
	return r, r.start(ctx)
}

func (r *redisServer) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

func (r *redisServer) url() string { return "redis://" + r.addr() + "/0" }

func (r *redisServer) start(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	r.cmd = exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--loglevel", "warning")
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		logf.Close()
		close(done)
	}(r.cmd, r.done)
	c := r.client()
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-r.done:
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			return fmt.Errorf("redis-server exited before answering: %s", fleet.Tail(string(log), 2000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer PING within 30 s: %v", r.addr(), err)
		}
	}
}

func (r *redisServer) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
}

// kill SIGKILLs the server (by pid) and waits for it to exit.
func (r *redisServer) kill() {
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// stop ends the server by its pid.
func (r *redisServer) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.kill()
	}
}

// flushAll is FLUSHALL.
func (r *redisServer) flushAll(ctx context.Context) error {
	c := r.client()
	defer c.Close()
	return c.FlushAll(ctx).Err()
}
