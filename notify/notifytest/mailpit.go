// Package notifytest is a test helper: it starts the real peers that the
// notification tests send to, above all mailpit (an SMTP server that keeps
// every message and shows it through an HTTP API), and reads mail back. Only
// tests import it.
//
// The peers are installed by scripts/test-tools.sh into a cache directory on
// first use; an environment variable (PACKLINE_MAILPIT for mailpit) points
// at a binary installed some other way. A peer that cannot be had skips its
// test on a developer's machine and fails it under CI (CI set).
package notifytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/packline/packline/internal/testio"
)

var tools sync.Map // name → func() (string, error)

// Tool returns the path of the peer binary name: the one env names, else the
// one scripts/test-tools.sh prints, run from the repository root once per
// test binary. When neither can be had it skips t, or fails it under CI.
func Tool(t testing.TB, name, env string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	once, _ := tools.LoadOrStore(name, sync.OnceValues(func() (string, error) {
		root, err := testio.RepoRoot()
		if err != nil {
			return "", err
		}
		var stderr bytes.Buffer
		cmd := exec.Command("bash", filepath.Join("scripts", "test-tools.sh"), name)
		cmd.Dir = root
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("scripts/test-tools.sh %s: %v\n%s", name, err, stderr.String())
		}
		return strings.TrimSpace(string(out)), nil
	}))
	path, err := once.(func() (string, error))()
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s is not available (set %s, or let scripts/test-tools.sh install it): %v", name, env, err)
		}
		t.Fatal(err)
	}
	return path
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartPeer runs a server and waits until ready reports true, for at most
// limit. It gives up at once if the process exits. The process is stopped
// when the test ends.
func StartPeer(t testing.TB, limit time.Duration, ready func() bool, name string, args ...string) error {
	t.Helper()
	cmd, out, done := exec.Command(name, args...), &testio.SyncBuffer{}, make(chan struct{})
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready() {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready:\n%s", filepath.Base(name), out.String())
		case <-deadline.C:
			return fmt.Errorf("%s not ready after %s:\n%s", filepath.Base(name), limit, out.String())
		case <-tick.C:
		}
	}
}

// HTTPOK reports whether a GET of url gets an answer below 500.
func HTTPOK(url string) func() bool {
	c := &http.Client{Timeout: time.Second}
	return func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode < 500
	}
}

func tcpOpen(addr string) func() bool {
	return func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
}

// MailpitServer is a running mailpit.
type MailpitServer struct {
	SMTPHost string // 127.0.0.1
	SMTPPort int
	API      string // base URL of the HTTP API, e.g. http://127.0.0.1:8025
}

// SMTPAddr is host:port of the SMTP server.
func (m *MailpitServer) SMTPAddr() string {
	return net.JoinHostPort(m.SMTPHost, strconv.Itoa(m.SMTPPort))
}

// Mailpit starts a mailpit with its own database, passing it args besides
// the addresses, and waits until both its HTTP API and its SMTP port answer.
// It is stopped when the test ends.
func Mailpit(t testing.TB, args ...string) *MailpitServer {
	t.Helper()
	bin := Tool(t, "mailpit", "PACKLINE_MAILPIT")
	var err error
	for try := 0; try < 3; try++ { // a port taken between FreePort and bind: try others
		smtpPort, httpPort := FreePort(t), FreePort(t)
		m := &MailpitServer{SMTPHost: "127.0.0.1", SMTPPort: smtpPort, API: "http://127.0.0.1:" + strconv.Itoa(httpPort)}
		all := append([]string{
			"--smtp", m.SMTPAddr(),
			"--listen", "127.0.0.1:" + strconv.Itoa(httpPort),
			"--database", filepath.Join(t.TempDir(), "mailpit.db"),
			"--disable-version-check", "--smtp-disable-rdns", "--quiet",
		}, args...)
		ready := func() bool {
			return HTTPOK(m.API+"/readyz")() && tcpOpen(m.SMTPAddr())()
		}
		if err = StartPeer(t, 60*time.Second, ready, bin, all...); err == nil {
			return m
		}
	}
	t.Fatal(err)
	return nil
}

// Message is the part of mailpit's message view the tests read.
type Message struct {
	ID        string
	MessageID string
	Subject   string
	From      struct{ Name, Address string }
	To        []struct{ Name, Address string }
	ReplyTo   []struct{ Name, Address string }
	Text      string
	HTML      string
}

func (m *MailpitServer) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := http.Get(m.API + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("mailpit GET %s: %v", path, err)
	}
}

// Messages returns every message mailpit holds, newest first, in full.
func (m *MailpitServer) Messages(t testing.TB) []Message {
	t.Helper()
	var list struct {
		Messages []struct{ ID string }
	}
	m.getJSON(t, "/api/v1/messages", &list)
	out := make([]Message, 0, len(list.Messages))
	for _, s := range list.Messages {
		var full Message
		m.getJSON(t, "/api/v1/message/"+s.ID, &full)
		out = append(out, full)
	}
	return out
}

// Headers returns the headers of the message with mailpit's ID id.
func (m *MailpitServer) Headers(t testing.TB, id string) map[string][]string {
	t.Helper()
	var h map[string][]string
	m.getJSON(t, "/api/v1/message/"+id+"/headers", &h)
	return h
}
