package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progress is the one line on stderr that says what the run is doing,
// rewritten in place.
type progress struct {
	w     io.Writer
	start time.Time

	mu      sync.Mutex
	current string
	since   time.Time

	ok, failed, waiting atomic.Int64
	stop                chan struct{}
	stopped             chan struct{}
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now(), since: time.Now(), stop: make(chan struct{}), stopped: make(chan struct{})}
	go p.run()
	return p
}

// phase starts a new phase: its counters start from zero.
func (p *progress) phase(name string) {
	p.mu.Lock()
	p.current, p.since = name, time.Now()
	p.mu.Unlock()
	p.ok.Store(0)
	p.failed.Store(0)
	p.waiting.Store(0)
}

func (p *progress) name() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}

// add counts one order done (ok) or given up on.
func (p *progress) add(ok bool) {
	if ok {
		p.ok.Add(1)
	} else {
		p.failed.Add(1)
	}
}

// backlog shows how much work the run waits for.
func (p *progress) backlog(n int) { p.waiting.Store(int64(n)) }

func (p *progress) run() {
	defer close(p.stopped)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			fmt.Fprintf(p.w, "\r%-110s\r", "")
			return
		case <-t.C:
			fmt.Fprintf(p.w, "\r%-110s", p.line())
		}
	}
}

func (p *progress) line() string {
	p.mu.Lock()
	name, since := p.current, p.since
	p.mu.Unlock()
	s := fmt.Sprintf("[%4.0fs] %s (%.0fs): %d orders", time.Since(p.start).Seconds(), name, time.Since(since).Seconds(), p.ok.Load())
	if n := p.failed.Load(); n > 0 {
		s += fmt.Sprintf(", %d failed", n)
	}
	if n := p.waiting.Load(); n > 0 {
		s += fmt.Sprintf(", waiting for %d", n)
	}
	return s
}

// close clears the line.
func (p *progress) close() {
	close(p.stop)
	<-p.stopped
}
