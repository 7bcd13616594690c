package flows

import (
	"fmt"
	"strings"

	"github.com/packline/packline"
)

// validate checks what the parser cannot see one node at a time: names that
// refer to each other, terminal states, reachability.
func (p *parser) validate(f *Flow) error {
	at := func(line int, format string, args ...any) error {
		return &LoadError{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	if f.states[f.Initial] == nil {
		return at(f.initialLine, "initial state %q is not a state of the flow", f.Initial)
	}
	if f.states[f.Initial].Terminal {
		return at(f.states[f.Initial].line, "initial state %q is terminal", f.Initial)
	}
	guard := func(line int, g Guard, where string) error {
		if _, ok := builtinGuards[g.Name]; ok || f.flags[g.Name] {
			return nil
		}
		return at(line, "%s: unknown guard %q (declare it under flags, or use has_customizable_line, payments_reach_total)", where, g.Name)
	}
	effects := func(specs []EffectSpec, where string) error {
		for _, e := range specs {
			if !knownEffects[e.Type] {
				return at(e.line, "%s: unknown effect %q", where, e.Type)
			}
			if e.Type == "webhook:deliver" {
				return at(e.line, "%s: webhook:deliver is owed by every state change; name the type with webhook: on the transition instead", where)
			}
			notify := strings.HasPrefix(e.Type, "notify:")
			if notify && e.Template == "" {
				return at(e.line, "%s: %s needs a template", where, e.Type)
			}
			if notify && e.To != "customer" && e.To != "merchant" {
				return at(e.line, "%s: %s goes to customer or merchant, not %q", where, e.Type, e.To)
			}
			if !notify && (e.Template != "" || e.To != "") {
				return at(e.line, "%s: only notify effects take template and to", where)
			}
			if e.AmountMajor < 0 || (e.AmountMajor > 0 && e.Type != "payment:authorize") {
				return at(e.line, "%s: amount is only for payment:authorize and must be positive", where)
			}
			if e.If != nil {
				if err := guard(e.line, *e.If, where); err != nil {
					return err
				}
			}
		}
		return nil
	}
	flags := func(line int, names []string, where string) error {
		for _, n := range names {
			if !f.flags[n] {
				return at(line, "%s: unknown flag %q (declare it under flags)", where, n)
			}
		}
		return nil
	}
	transition := func(t *Transition, where string) error {
		for _, s := range t.From {
			st := f.states[s]
			if st == nil {
				return at(t.lines.at("from", t.line), "%s: unknown state %q", where, s)
			}
			if st.Terminal {
				return at(t.lines.at("from", t.line), "%s: leaves terminal state %q", where, s)
			}
		}
		if t.To != "" && f.states[t.To] == nil {
			return at(t.lines.at("to", t.line), "%s: unknown state %q", where, t.To)
		}
		for _, g := range t.Guards {
			if err := guard(t.lines.at("guard", t.line), g, where); err != nil {
				return err
			}
		}
		if err := flags(t.lines.at("set", t.line), t.Set, where); err != nil {
			return err
		}
		if err := flags(t.lines.at("unset", t.line), t.Unset, where); err != nil {
			return err
		}
		if t.Webhook != "" && !strings.HasPrefix(t.Webhook, "order.") {
			return at(t.lines.at("webhook", t.line), "%s: webhook type %q must start with order.", where, t.Webhook)
		}
		return effects(t.Effects, where)
	}
	if err := effects(f.OnCreate, "on_create"); err != nil {
		return err
	}
	for _, e := range f.Events {
		for _, d := range e.Data {
			if !nameRE.MatchString(d.Name) {
				return at(e.line, "event %s: data field %q must be snake_case", e.Name, d.Name)
			}
		}
		if e.Apply == "record_payment" && !hasIntField(e, "amount") {
			return at(e.line, "event %s: record_payment needs an integer data field amount", e.Name)
		}
		for _, t := range e.Transitions {
			if err := transition(t, "event "+e.Name); err != nil {
				return err
			}
		}
	}
	for _, t := range f.Automatic {
		if err := transition(t, "automatic transition"); err != nil {
			return err
		}
		if t.To == "" || t.from(t.To) {
			return at(t.lines.at("to", t.line), "automatic transition: must move to another state")
		}
	}
	for _, t := range f.Timers {
		e := f.events[t.Event]
		if e == nil {
			return at(t.lines.at("event", t.line), "timer: unknown event %q", t.Event)
		}
		if !e.allows(packline.ActorSystem) {
			return at(t.lines.at("event", t.line), "timer %s: the event must allow the system actor", t.Event)
		}
		states, line := t.While, t.lines.at("while", t.line)
		if t.In != "" {
			states, line = []string{t.In}, t.lines.at("in", t.line)
		}
		for _, s := range states {
			st := f.states[s]
			if st == nil {
				return at(line, "timer %s: unknown state %q", t.Event, s)
			}
			if st.Terminal {
				return at(line, "timer %s: set on terminal state %q, where it could never act", t.Event, s)
			}
		}
	}
	// Every state must be reachable from the initial one.
	reached := map[string]bool{f.Initial: true}
	for changed := true; changed; {
		changed = false
		visit := func(t *Transition) {
			if t.To == "" || reached[t.To] {
				return
			}
			for _, s := range t.From {
				if reached[s] {
					reached[t.To] = true
					changed = true
					return
				}
			}
		}
		for _, e := range f.Events {
			for _, t := range e.Transitions {
				visit(t)
			}
		}
		for _, t := range f.Automatic {
			visit(t)
		}
	}
	for _, s := range f.States {
		if !reached[s.Name] {
			return at(s.line, "state %q is unreachable from %q", s.Name, f.Initial)
		}
	}
	return nil
}

func hasIntField(e *Event, name string) bool {
	for _, d := range e.Data {
		if d.Name == name && d.Type == "integer" {
			return true
		}
	}
	return false
}
