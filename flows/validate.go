package flows

import (
	"fmt"
	"slices"
	"strings"

	"github.com/packline/packline"
)

// validate checks what the parser cannot see one node at a time: names that
// refer to each other, terminal states, reachability, and that the flow
// takes what its effects report. The first problem found is returned, with
// its file and line.
func (p *parser) validate(f *Flow) error {
	c := checker{file: p.file, f: f}
	for _, check := range []func() error{c.initial, c.onCreate, c.events, c.automatic, c.timers, c.reachable} {
		if err := check(); err != nil {
			return err
		}
	}
	return p.validateReports(f)
}

// checker holds the checks of validate, one method each.
type checker struct {
	file string
	f    *Flow
}

func (c checker) at(line int, format string, args ...any) error {
	return &LoadError{File: c.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// initial: the initial state exists and is not terminal.
func (c checker) initial() error {
	f := c.f
	if f.states[f.Initial] == nil {
		return c.at(f.initialLine, "initial state %q is not a state of the flow", f.Initial)
	}
	if f.states[f.Initial].Terminal {
		return c.at(f.states[f.Initial].line, "initial state %q is terminal", f.Initial)
	}
	return nil
}

func (c checker) onCreate() error { return c.effects(c.f.OnCreate, "on_create") }

// events: data fields, record_payment's amount, and every transition.
func (c checker) events() error {
	for _, e := range c.f.Events {
		for _, d := range e.Data {
			if !nameRE.MatchString(d.Name) {
				return c.at(e.line, "event %s: data field %q must be snake_case", e.Name, d.Name)
			}
		}
		if e.Apply == "record_payment" && !hasIntField(e, "amount") {
			return c.at(e.line, "event %s: record_payment needs an integer data field amount", e.Name)
		}
		for _, t := range e.Transitions {
			if err := c.transition(t, "event "+e.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// automatic: each automatic transition is a transition that moves.
func (c checker) automatic() error {
	for _, t := range c.f.Automatic {
		if err := c.transition(t, "automatic transition"); err != nil {
			return err
		}
		if t.To == "" || t.from(t.To) {
			return c.at(t.lines.at("to", t.line), "automatic transition: must move to another state")
		}
	}
	return nil
}

// timers: a timer sends an event the system may send, in states that exist
// and are not terminal.
func (c checker) timers() error {
	for _, t := range c.f.Timers {
		e := c.f.events[t.Event]
		if e == nil {
			return c.at(t.lines.at("event", t.line), "timer: unknown event %q", t.Event)
		}
		if !e.allows(packline.ActorSystem) {
			return c.at(t.lines.at("event", t.line), "timer %s: the event must allow the system actor", t.Event)
		}
		states, line := t.While, t.lines.at("while", t.line)
		if t.In != "" {
			states, line = []string{t.In}, t.lines.at("in", t.line)
		}
		for _, s := range states {
			st := c.f.states[s]
			if st == nil {
				return c.at(line, "timer %s: unknown state %q", t.Event, s)
			}
			if st.Terminal {
				return c.at(line, "timer %s: set on terminal state %q, where it could never act", t.Event, s)
			}
		}
	}
	return nil
}

// reachable: every state can be reached from the initial one.
func (c checker) reachable() error {
	f := c.f
	reached := map[string]bool{f.Initial: true}
	visit := func(t *Transition) bool {
		if t.To == "" || reached[t.To] || !slices.ContainsFunc(t.From, func(s string) bool { return reached[s] }) {
			return false
		}
		reached[t.To] = true
		return true
	}
	for changed := true; changed; {
		changed = false
		for _, e := range f.Events {
			for _, t := range e.Transitions {
				changed = visit(t) || changed
			}
		}
		for _, t := range f.Automatic {
			changed = visit(t) || changed
		}
	}
	for _, s := range f.States {
		if !reached[s.Name] {
			return c.at(s.line, "state %q is unreachable from %q", s.Name, f.Initial)
		}
	}
	return nil
}

// transition: its states, guards, flags, webhook type and effects.
func (c checker) transition(t *Transition, where string) error {
	for _, s := range t.From {
		st := c.f.states[s]
		if st == nil {
			return c.at(t.lines.at("from", t.line), "%s: unknown state %q", where, s)
		}
		if st.Terminal {
			return c.at(t.lines.at("from", t.line), "%s: leaves terminal state %q", where, s)
		}
	}
	if t.To != "" && c.f.states[t.To] == nil {
		return c.at(t.lines.at("to", t.line), "%s: unknown state %q", where, t.To)
	}
	for _, g := range t.Guards {
		if err := c.guard(t.lines.at("guard", t.line), g, where); err != nil {
			return err
		}
	}
	if err := c.flags(t.lines.at("set", t.line), t.Set, where); err != nil {
		return err
	}
	if err := c.flags(t.lines.at("unset", t.line), t.Unset, where); err != nil {
		return err
	}
	if t.Webhook != "" && !strings.HasPrefix(t.Webhook, "order.") {
		return c.at(t.lines.at("webhook", t.line), "%s: webhook type %q must start with order.", where, t.Webhook)
	}
	return c.effects(t.Effects, where)
}

// guard: a built-in guard or a declared flag.
func (c checker) guard(line int, g Guard, where string) error {
	if _, ok := builtinGuards[g.Name]; ok || c.f.flags[g.Name] {
		return nil
	}
	return c.at(line, "%s: unknown guard %q (declare it under flags, or use has_customizable_line, payments_reach_total)", where, g.Name)
}

// flags: every name is a declared flag.
func (c checker) flags(line int, names []string, where string) error {
	for _, n := range names {
		if !c.f.flags[n] {
			return c.at(line, "%s: unknown flag %q (declare it under flags)", where, n)
		}
	}
	return nil
}

// effects: each is a catalogue effect a transition may owe, with the
// fields its kind takes.
func (c checker) effects(specs []EffectSpec, where string) error {
	for _, e := range specs {
		info, ok := EffectOf(EffectType(e.Type))
		switch {
		case !ok || info.Owed == OwedByTimer:
			return c.at(e.line, "%s: unknown effect %q", where, e.Type)
		case info.Owed == OwedByStateChange:
			return c.at(e.line, "%s: %s is owed by every state change; name the type with webhook: on the transition instead", where, e.Type)
		case info.Message && e.Template == "":
			return c.at(e.line, "%s: %s needs a template", where, e.Type)
		case info.Message && e.To != "customer" && e.To != "merchant":
			return c.at(e.line, "%s: %s goes to customer or merchant, not %q", where, e.Type, e.To)
		case !info.Message && (e.Template != "" || e.To != ""):
			return c.at(e.line, "%s: only notify effects take template and to", where)
		case e.AmountMajor < 0 || (e.AmountMajor > 0 && !info.FixedAmount):
			return c.at(e.line, "%s: amount is only for %s and must be positive", where, EffectPaymentAuthorize)
		}
		if e.If != nil {
			if err := c.guard(e.line, *e.If, where); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateReports checks that the flow takes what its effects report: for
// each effect a flow owes and each event the effect may report (EffectInfo.
// Reports), the flow declares the event, lets the reporter send it, and
// takes it from a state the order may be in when the effect runs. That is
// the state the owing transition leads to (on_create: the initial state), or
// one that automatic transitions may lead to from there; guards are not
// judged, since they may hold. An effect whose report the flow could never
// take would be marked done with its result refused.
func (p *parser) validateReports(f *Flow) error {
	check := func(specs []EffectSpec, where string, states []string) error {
		for _, e := range specs {
			info, _ := EffectOf(EffectType(e.Type))
			for _, s := range states {
				if err := f.takesReports(info, f.settles(s)); err != nil {
					return &LoadError{File: p.file, Line: e.line, Msg: where + ": " + err.Error()}
				}
			}
		}
		return nil
	}
	if err := check(f.OnCreate, "on_create", []string{f.Initial}); err != nil {
		return err
	}
	for _, ev := range f.Events {
		for _, t := range ev.Transitions {
			states := []string{t.To}
			if t.To == "" {
				states = t.From
			}
			if err := check(t.Effects, "event "+ev.Name, states); err != nil {
				return err
			}
		}
	}
	for _, t := range f.Automatic {
		if err := check(t.Effects, "automatic transition", []string{t.To}); err != nil {
			return err
		}
	}
	return nil
}

// takesReports says why the flow could not take an event the effect may
// report while the order is in one of states (nil when it could take each).
func (f *Flow) takesReports(info EffectInfo, states []string) error {
	var missing []string
	for _, name := range info.Reports {
		if f.events[string(name)] == nil {
			missing = append(missing, string(name))
		}
	}
	if len(missing) > 0 {
		noun := "event"
		if len(missing) > 1 {
			noun = "events"
		}
		return fmt.Errorf("%s reports %s, but the flow has no %s %s",
			info.Type, joinEvents(info.Reports, " or "), noun, strings.Join(missing, ", "))
	}
	for _, name := range info.Reports {
		ev := f.events[string(name)]
		if !ev.allows(info.Reporter) {
			return fmt.Errorf("%s reports %s as the %s actor, but event %s does not allow it", info.Type, name, info.Reporter, name)
		}
		if !slices.ContainsFunc(ev.Transitions, func(t *Transition) bool { return slices.ContainsFunc(states, t.from) }) {
			return fmt.Errorf("%s reports %s, but event %s has no transition from %s, where the order is when it runs",
				info.Type, name, name, strings.Join(states, " or "))
		}
	}
	return nil
}

// settles returns state and every state automatic transitions may lead to
// from it (guards not judged), in the flow's order of states: where an order
// that enters state may be when an effect owed on the way runs.
func (f *Flow) settles(state string) []string {
	in := map[string]bool{state: true}
	for changed := true; changed; {
		changed = false
		for _, t := range f.Automatic {
			if !in[t.To] && slices.ContainsFunc(t.From, func(s string) bool { return in[s] }) {
				in[t.To], changed = true, true
			}
		}
	}
	var out []string
	for _, s := range f.States {
		if in[s.Name] {
			out = append(out, s.Name)
		}
	}
	return out
}

func joinEvents(names []EventName, sep string) string {
	ss := make([]string, len(names))
	for i, n := range names {
		ss[i] = string(n)
	}
	return strings.Join(ss, sep)
}

func hasIntField(e *Event, name string) bool {
	for _, d := range e.Data {
		if d.Name == name && d.Type == "integer" {
			return true
		}
	}
	return false
}
