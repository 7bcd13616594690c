package notify_test

import (
	"bytes"
	"context"
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
)

// The peers these tests run against, mailpit (SMTP) and prism (a mock of
// Twilio's API from testdata/twilio.yaml), are installed by
// scripts/test-tools.sh into a cache directory on first use; PACKLINE_MAILPIT
// and PACKLINE_PRISM point at binaries installed some other way. A peer that
// cannot be installed skips its tests on a developer's machine and fails
// them under CI (CI set).

var tools sync.Map // name → func() (string, error)

func tool(t *testing.T, name, env string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	once, _ := tools.LoadOrStore(name, sync.OnceValues(func() (string, error) {
		var stderr bytes.Buffer
		cmd := exec.Command("bash", filepath.Join("..", "scripts", "test-tools.sh"), name)
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

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// peer is a server process a test started.
type peer struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startPeer runs a server and waits until ready reports true, for at most
// limit. It gives up at once if the process exits. The process is stopped
// when the test ends.
func startPeer(t *testing.T, limit time.Duration, ready func() bool, name string, args ...string) (*peer, error) {
	t.Helper()
	p := &peer{cmd: exec.Command(name, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready() {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before it was ready:\n%s", filepath.Base(name), p.out.String())
		case <-deadline.C:
			return nil, fmt.Errorf("%s not ready after %s:\n%s", filepath.Base(name), limit, p.out.String())
		case <-tick.C:
		}
	}
}

func httpOK(url string) func() bool {
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

// mailpit is a running mailpit: an SMTP server that keeps every message and
// shows it through an HTTP API.
type mailpit struct {
	SMTPPort int
	API      string
}

func startMailpit(t *testing.T, args ...string) *mailpit {
	t.Helper()
	bin := tool(t, "mailpit", "PACKLINE_MAILPIT")
	var err error
	for try := 0; try < 3; try++ { // a port taken between freePort and bind: try others
		smtpPort, httpPort := freePort(t), freePort(t)
		m := &mailpit{SMTPPort: smtpPort, API: "http://127.0.0.1:" + strconv.Itoa(httpPort)}
		all := append([]string{
			"--smtp", "127.0.0.1:" + strconv.Itoa(smtpPort),
			"--listen", "127.0.0.1:" + strconv.Itoa(httpPort),
			"--database", filepath.Join(t.TempDir(), "mailpit.db"),
			"--disable-version-check", "--smtp-disable-rdns", "--quiet",
		}, args...)
		ready := func() bool {
			return httpOK(m.API+"/readyz")() && tcpOpen("127.0.0.1:"+strconv.Itoa(smtpPort))()
		}
		if _, err = startPeer(t, 60*time.Second, ready, bin, all...); err == nil {
			return m
		}
	}
	t.Fatal(err)
	return nil
}

// mailpitMessage is the part of mailpit's message view the tests read.
type mailpitMessage struct {
	ID        string
	MessageID string
	Subject   string
	From      struct{ Name, Address string }
	To        []struct{ Name, Address string }
	ReplyTo   []struct{ Name, Address string }
	Text      string
	HTML      string
}

func (m *mailpit) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(m.API + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// messages returns every message mailpit holds, newest first, in full.
func (m *mailpit) messages(t *testing.T) []mailpitMessage {
	t.Helper()
	var list struct {
		Messages []struct{ ID string }
	}
	m.getJSON(t, "/api/v1/messages", &list)
	out := make([]mailpitMessage, 0, len(list.Messages))
	for _, s := range list.Messages {
		var full mailpitMessage
		m.getJSON(t, "/api/v1/message/"+s.ID, &full)
		out = append(out, full)
	}
	return out
}

func (m *mailpit) headers(t *testing.T, id string) map[string][]string {
	t.Helper()
	var h map[string][]string
	m.getJSON(t, "/api/v1/message/"+id+"/headers", &h)
	return h
}

// startPrism serves an OpenAPI file with prism's mock server, validating
// every request against it (--errors: a request that breaks the contract
// gets a 4xx instead of a mock answer).
func startPrism(t *testing.T, spec string) string {
	t.Helper()
	bin := tool(t, "prism", "PACKLINE_PRISM")
	var err error
	for try := 0; try < 3; try++ {
		port := freePort(t)
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		_, err = startPeer(t, 90*time.Second, httpOK(base+"/"), bin,
			"mock", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--errors", spec)
		if err == nil {
			return base
		}
	}
	t.Fatal(err)
	return ""
}

func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
