package flows

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// tinyFlow is a valid flow; each bad flow below changes one thing in it.
const tinyFlow = `name: tiny
title: Tiny
initial: open
flags: [done]
states:
  open: {sla: 1h}
  closed: {terminal: true}
events:
  close:
    actors: [merchant, system]
    transitions:
      - from: open
        to: closed
        set: [done]
        effects: [{email: closed}]
timers:
  - {event: close, in: open, after: 24h}
`

// edit returns tinyFlow with old replaced by new (which must occur once).
func edit(t *testing.T, old, new string) string {
	t.Helper()
	if n := strings.Count(tinyFlow, old); n != 1 {
		t.Fatalf("%q occurs %d times in the tiny flow", old, n)
	}
	return strings.Replace(tinyFlow, old, new, 1)
}

// markedLine is the line of src that carries the "# <-" marker: where the
// loader must point.
func markedLine(t *testing.T, src string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, "# <-") {
			return i + 1
		}
	}
	t.Fatalf("no # <- marker in\n%s", src)
	return 0
}

func TestParseTinyFlow(t *testing.T) {
	t.Parallel()
	f, err := Parse("tiny.yaml", []byte(tinyFlow))
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "tiny" || f.Initial != "open" || f.Source != "tiny.yaml" || len(f.States) != 2 || len(f.Events) != 1 {
		t.Errorf("parsed %+v", f)
	}
	if tm := f.Timers[0]; tm.Event != "close" || tm.In != "open" || tm.After != 24*time.Hour {
		t.Errorf("timer %+v", tm)
	}
	if e := f.Event("close").Transitions[0].Effects[0]; e.Type != "notify:email" || e.Template != "closed" || e.To != "customer" {
		t.Errorf("effect %+v: want notify:email closed to the customer by default", e)
	}
}

// TestParseRefusesBadFlows checks that each kind of bad flow is refused with
// an error naming the file, the line of the problem, and the problem.
func TestParseRefusesBadFlows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  func(t *testing.T) string
		msg  string
	}{
		{"not YAML", func(t *testing.T) string {
			return edit(t, "title: Tiny\n", "title: Tiny: flow # <-\n")
		}, "not valid YAML: mapping values are not allowed in this context"},
		{"unknown key", func(t *testing.T) string {
			return edit(t, "title: Tiny\n", "title: Tiny\ncolour: blue # <-\n")
		}, `unknown key "colour" in the flow`},
		{"unknown key in a state", func(t *testing.T) string {
			return edit(t, "  open: {sla: 1h}\n", "  open: {sla: 1h,\n    colour: red} # <-\n")
		}, `unknown key "colour" in state open`},
		{"unknown key in a transition", func(t *testing.T) string {
			return edit(t, "        to: closed\n", "        goto: closed # <-\n")
		}, `unknown key "goto" in a transition of event close`},
		{"unknown state in from", func(t *testing.T) string {
			return edit(t, "      - from: open\n", "      - from: opened # <-\n")
		}, `event close: unknown state "opened"`},
		{"unknown state in to", func(t *testing.T) string {
			return edit(t, "        to: closed\n", "        to: shut # <-\n")
		}, `event close: unknown state "shut"`},
		{"unreachable state", func(t *testing.T) string {
			return edit(t, "  closed: {terminal: true}\n", "  closed: {terminal: true}\n  limbo: {} # <-\n")
		}, `state "limbo" is unreachable from "open"`},
		{"event with no actors", func(t *testing.T) string {
			return edit(t, "  close:\n    actors: [merchant, system]\n", "  close: # <-\n")
		}, "event close has no actors"},
		{"event with an empty list of actors", func(t *testing.T) string {
			return edit(t, "    actors: [merchant, system]\n", "    actors: [] # <-\n")
		}, "event close has no actors"},
		{"unknown actor", func(t *testing.T) string {
			return edit(t, "    actors: [merchant, system]\n", "    actors: [merchant, robot] # <-\n")
		}, `event close: unknown actor "robot"`},
		{"transition out of a terminal state", func(t *testing.T) string {
			return edit(t, "timers:\n", "  reopen:\n    actors: [merchant]\n    transitions:\n      - {from: closed, to: open} # <-\ntimers:\n")
		}, `event reopen: leaves terminal state "closed"`},
		{"timer on a terminal state", func(t *testing.T) string {
			return edit(t, "  - {event: close, in: open, after: 24h}\n", "  - {event: close, in: open, after: 24h}\n  - {event: close, in: closed, after: 1h} # <-\n")
		}, `timer close: set on terminal state "closed", where it could never act`},
		{"duplicate state", func(t *testing.T) string {
			return edit(t, "  closed: {terminal: true}\n", "  closed: {terminal: true}\n  open: {} # <-\n")
		}, `duplicate key "open" in states`},
		{"duplicate event", func(t *testing.T) string {
			return edit(t, "timers:\n", "  close: # <-\n    actors: [merchant]\n    transitions: [{from: open, to: closed}]\ntimers:\n")
		}, `duplicate key "close" in events`},
		{"unknown effect", func(t *testing.T) string {
			return edit(t, "        effects: [{email: closed}]\n", "        effects: [stock:teleport] # <-\n")
		}, `event close: unknown effect "stock:teleport"`},
		{"unknown effect in on_create", func(t *testing.T) string {
			return edit(t, "flags: [done]\n", "flags: [done]\non_create:\n  - {do: sheets:sync} # <-\n")
		}, `on_create: unknown effect "sheets:sync"`},
		{"webhook:deliver as an effect", func(t *testing.T) string {
			return edit(t, "        effects: [{email: closed}]\n", "        effects: [webhook:deliver] # <-\n")
		}, "event close: webhook:deliver is owed by every state change; name the type with webhook: on the transition instead"},
		{"unknown guard", func(t *testing.T) string {
			return edit(t, "        to: closed\n", "        to: closed\n        guard: is_ready # <-\n")
		}, `event close: unknown guard "is_ready"`},
		{"unknown guard in an effect", func(t *testing.T) string {
			return edit(t, "        effects: [{email: closed}]\n", "        effects: [{email: closed, if: \"!vip\"}] # <-\n")
		}, `event close: unknown guard "vip"`},
		{"unknown flag in set", func(t *testing.T) string {
			return edit(t, "        set: [done]\n", "        set: [finished] # <-\n")
		}, `event close: unknown flag "finished" (declare it under flags)`},
		{"notify without template", func(t *testing.T) string {
			return edit(t, "        effects: [{email: closed}]\n", "        effects: [{do: notify:email}] # <-\n")
		}, "event close: notify:email needs a template"},
		{"notify to someone else", func(t *testing.T) string {
			return edit(t, "        effects: [{email: closed}]\n", "        effects: [{sms: closed, to: courier}] # <-\n")
		}, `event close: notify:sms goes to customer or merchant, not "courier"`},
		{"automatic transition that does not move", func(t *testing.T) string {
			return edit(t, "timers:\n", "automatic:\n  - from: open\n    to: open # <-\ntimers:\n")
		}, "automatic transition: must move to another state"},
		{"automatic transition without to", func(t *testing.T) string {
			return edit(t, "timers:\n", "automatic:\n  - {from: open, guard: done} # <-\ntimers:\n")
		}, "automatic transition: must move to another state"},
		{"timer with an unknown event", func(t *testing.T) string {
			return edit(t, "  - {event: close, in: open, after: 24h}\n", "  - event: vanish # <-\n    in: open\n    after: 24h\n")
		}, `timer: unknown event "vanish"`},
		{"timer with an event the system may not send", func(t *testing.T) string {
			src := edit(t, "    actors: [merchant, system]\n", "    actors: [merchant]\n")
			return strings.Replace(src, "after: 24h}\n", "after: 24h} # <-\n", 1)
		}, "timer close: the event must allow the system actor"},
		{"timer with a bad duration", func(t *testing.T) string {
			return edit(t, "  - {event: close, in: open, after: 24h}\n", "  - {event: close, in: open, after: soon} # <-\n")
		}, `after: bad duration "soon" (use 90m, 24h, 7d)`},
		{"initial state that is not a state", func(t *testing.T) string {
			return edit(t, "initial: open\n", "initial: opne # <-\n")
		}, `initial state "opne" is not a state of the flow`},
		{"data field of an unknown type", func(t *testing.T) string {
			return edit(t, "    actors: [merchant, system]\n", "    actors: [merchant, system]\n    data:\n      reason: {type: text} # <-\n")
		}, "data field reason: type must be string, integer or boolean"},
		{"webhook type outside order.", func(t *testing.T) string {
			return edit(t, "        set: [done]\n", "        set: [done]\n        webhook: closed # <-\n")
		}, `event close: webhook type "closed" must start with order.`},
		{"effect whose events the flow lacks", func(t *testing.T) string {
			return edit(t, "        effects: [{email: closed}]\n", "        effects: [stock:decrement] # <-\n")
		}, "event close: stock:decrement reports stock_taken or stock_short, but the flow has no events stock_taken, stock_short"},
		{"effect with one of its events missing", func(t *testing.T) string {
			src := edit(t, "flags: [done]\n", "flags: [done]\non_create:\n  - payment:confirm # <-\n")
			return addEvents(t, src, "  payment_succeeded:\n    actors: [payment]\n    transitions: [{from: open}]\n")
		}, "on_create: payment:confirm reports payment_succeeded or payment_failed, but the flow has no event payment_failed"},
		{"reported event its reporter may not send", func(t *testing.T) string {
			return addEvents(t, tinyFlow, "  label:\n    actors: [merchant]\n    transitions: [{from: open, effects: [courier:label]}] # <-\n"+
				"  label_created:\n    actors: [merchant]\n    transitions: [{from: open}]\n")
		}, "event label: courier:label reports label_created as the system actor, but event label_created does not allow it"},
		{"reported event not taken where the effect runs", func(t *testing.T) string {
			src := edit(t, "        effects: [{email: closed}]\n", "        effects: [stock:decrement] # <-\n")
			return addEvents(t, src, "  stock_taken:\n    actors: [system]\n    transitions: [{from: open}]\n"+
				"  stock_short:\n    actors: [system]\n    transitions: [{from: open}]\n")
		}, "event close: stock:decrement reports stock_taken, but event stock_taken has no transition from closed, where the order is when it runs"},
		{"reported event taken from only one of the states the effect may run in", func(t *testing.T) string {
			src := edit(t, "  closed: {terminal: true}\n", "  closed: {terminal: true}\n  held: {}\n")
			src = addEvents(t, src, "  hold:\n    actors: [merchant]\n    transitions: [{from: open, to: held}]\n"+
				"  label:\n    actors: [merchant]\n    transitions:\n      - from: [open, held]\n        effects: [courier:label] # <-\n"+
				"  label_created:\n    actors: [system]\n    transitions: [{from: open}]\n")
			return src
		}, "event label: courier:label reports label_created, but event label_created has no transition from held, where the order is when it runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := tt.src(t)
			line := markedLine(t, src)
			_, err := Parse("bad.yaml", []byte(src))
			if err == nil {
				t.Fatalf("accepted:\n%s", src)
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("error %T %v is not a *LoadError", err, err)
			}
			if le.File != "bad.yaml" || le.Line != line || !strings.Contains(le.Msg, tt.msg) {
				t.Errorf("error %q: want bad.yaml line %d with %q", err, line, tt.msg)
			}
			if prefix := fmt.Sprintf("bad.yaml:%d: ", line); !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
		})
	}
}

// addEvents returns src with events added after the tiny flow's close event.
func addEvents(t *testing.T, src, events string) string {
	t.Helper()
	if n := strings.Count(src, "timers:\n"); n != 1 {
		t.Fatalf("timers: occurs %d times in\n%s", n, src)
	}
	return strings.Replace(src, "timers:\n", events+"timers:\n", 1)
}

// TestParseTakesReportsWhereTheOrderSettles checks that an effect's report
// may be taken from a state automatic transitions lead to from the state the
// effect was owed in, since the order is there when the effect runs.
func TestParseTakesReportsWhereTheOrderSettles(t *testing.T) {
	t.Parallel()
	src := edit(t, "  closed: {terminal: true}\n", "  closed: {terminal: true}\n  paid: {}\n  packing: {}\n")
	src = addEvents(t, src, "  pay:\n    actors: [merchant]\n    transitions: [{from: open, to: paid, effects: [courier:label]}]\n"+
		"  label_created:\n    actors: [system]\n    transitions: [{from: packing, to: closed}]\n")
	src = strings.Replace(src, "timers:\n", "automatic:\n  - {from: paid, to: packing}\ntimers:\n", 1)
	if _, err := Parse("settles.yaml", []byte(src)); err != nil {
		t.Fatalf("refused: %v\n%s", err, src)
	}
}

func TestParseEmptyFile(t *testing.T) {
	t.Parallel()
	_, err := Parse("empty.yaml", nil)
	if err == nil || err.Error() != "empty.yaml: the file is empty" {
		t.Errorf("error = %v, want empty.yaml: the file is empty", err)
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90m", 90 * time.Minute, true},
		{"24h", 24 * time.Hour, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"0.5d", 12 * time.Hour, true},
		{"soon", 0, false},
		{"-1h", 0, false},
		{"-1d", 0, false},
		{"d", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func writeFlow(t *testing.T, dir, file, src string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, file), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadCustomFlows(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFlow(t, dir, "tiny.yaml", tinyFlow)
	writeFlow(t, dir, "other.yml", strings.Replace(tinyFlow, "name: tiny", "name: tiny-two", 1))
	writeFlow(t, dir, "README.md", "not a flow")
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cash-on-delivery", "made-to-order", "prepaid-simple", "request-approval", "tiny", "tiny-two", "wholesale"}
	if got := r.Names(); !slices.Equal(got, want) {
		t.Errorf("names = %q, want %q", got, want)
	}
	if f := r.Get("tiny"); f == nil || f.Source != "tiny.yaml" {
		t.Errorf("tiny = %+v, want it loaded from tiny.yaml", f)
	}
	if f := r.Get("tiny-two"); f == nil || f.Source != "other.yml" {
		t.Errorf("tiny-two = %+v, want it loaded from other.yml", f)
	}

	r, err = Load("")
	if err != nil || len(r.Names()) != 5 {
		t.Errorf("Load(\"\") = %v, %v; want the five built-in flows", r.Names(), err)
	}
}

func TestLoadRefuses(t *testing.T) {
	t.Parallel()
	t.Run("a built-in name", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeFlow(t, dir, "mine.yaml", strings.Replace(tinyFlow, "name: tiny", "name: wholesale", 1))
		_, err := Load(dir)
		if err == nil || err.Error() != `mine.yaml: flow "wholesale" is already defined in wholesale.yaml` {
			t.Errorf("error = %v, want the name refused", err)
		}
	})
	t.Run("a name used twice", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeFlow(t, dir, "a.yaml", tinyFlow)
		writeFlow(t, dir, "b.yaml", tinyFlow)
		_, err := Load(dir)
		if err == nil || err.Error() != `b.yaml: flow "tiny" is already defined in a.yaml` {
			t.Errorf("error = %v, want the second tiny refused", err)
		}
	})
	t.Run("a bad flow", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeFlow(t, dir, "broken.yaml", strings.Replace(tinyFlow, "to: closed", "to: shut", 1))
		_, err := Load(dir)
		var le *LoadError
		if !errors.As(err, &le) || le.File != "broken.yaml" || le.Line != 13 {
			t.Errorf("error = %v, want broken.yaml:13", err)
		}
	})
	t.Run("a missing directory", func(t *testing.T) {
		t.Parallel()
		_, err := Load(filepath.Join(t.TempDir(), "nope"))
		if err == nil || !strings.HasPrefix(err.Error(), "PACKLINE_FLOWS_DIR: ") {
			t.Errorf("error = %v, want it to name PACKLINE_FLOWS_DIR", err)
		}
	})
}
