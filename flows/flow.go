// Package flows defines order lifecycles as data and the engine that applies
// events to them. A flow is loaded from a small YAML file (the five built-in
// ones are embedded from builtin/), validated at load, and applied by the pure
// function Flow.Apply: no I/O, no clock, so every rule is a table test.
package flows

import (
	"time"

	"github.com/packline/packline"
)

// builtinGuards are the predicates computed from the order itself rather
// than from a flag.
var builtinGuards = map[string]func(o *packline.Order) bool{
	"has_customizable_line": func(o *packline.Order) bool { return o.HasCustomizableLine() },
	"payments_reach_total":  func(o *packline.Order) bool { return o.Total > 0 && o.AmountPaid >= o.Total },
}

// builtinActions are what an event may do to the order besides moving it.
var builtinActions = map[string]bool{
	// record_payment adds data.amount to the amount paid.
	"record_payment": true,
}

// Flow is one lifecycle: states, events, guards, effects and timers.
type Flow struct {
	Name        string
	Title       string
	Description string
	Seed        string
	Initial     string
	Flags       []string
	OnCreate    []EffectSpec
	States      []*State // in file order
	Events      []*Event // in file order
	Automatic   []*Transition
	Timers      []*TimerSpec

	// Source is where the flow was loaded from (a file name).
	Source string

	states      map[string]*State
	events      map[string]*Event
	flags       map[string]bool
	initialLine int
}

// State is one state of a flow.
type State struct {
	Name     string
	Terminal bool
	// SLA is how long an order may stay in this state before it counts as
	// stuck (0: no SLA).
	SLA         time.Duration
	Description string
	line        int
}

// Event is something an actor may send to an order.
type Event struct {
	Name        string
	Description string
	Actors      []packline.ActorType
	Data        []*DataField
	Apply       string // a builtin action, e.g. record_payment
	Transitions []*Transition
	line        int
}

// DataField describes one field of an event's data object.
type DataField struct {
	Name      string
	Type      string // string, integer, boolean
	Required  bool
	Enum      []string
	Min, Max  *int64
	MaxLength int
}

// Guard is a flag or builtin predicate, possibly negated ("!label_exists").
type Guard struct {
	Name   string
	Negate bool
}

func (g Guard) String() string {
	if g.Negate {
		return "!" + g.Name
	}
	return g.Name
}

// Transition is one way an event (or the system, for automatic ones) moves an
// order from one of From to To. An empty To means the order stays where it is.
type Transition struct {
	From    []string
	To      string
	Guards  []Guard
	Set     []string
	Unset   []string
	Effects []EffectSpec
	// Webhook overrides the webhook event type; by default a transition that
	// changes state owes order.<to> and one that does not owes none.
	Webhook string
	line    int
	lines   keyLines
}

// EffectSpec is an effect a transition owes.
type EffectSpec struct {
	Type     string // an EffectType of the catalogue, e.g. stock:decrement
	Template string // notify:*: the message template
	To       string // notify:*: customer or merchant
	If       *Guard // only when this guard holds before the transition
	// AmountMajor is a fixed amount in major units (payment:authorize of
	// "1.00" for a card check); 0 means the order total.
	AmountMajor int64
	Purpose     string
	line        int
}

// TimerSpec is a delayed event. Exactly one of In (armed when the order enters
// the state, fires only if it is still there) or Before (relative to an order
// date field, fires while the order is in one of While) is set.
type TimerSpec struct {
	Event  string
	In     string
	After  time.Duration
	Before string // order field: ship_date
	Offset time.Duration
	While  []string
	line   int
	lines  keyLines
}

// keyLines maps a key of a flow file mapping to the line of its value, so
// an error about one field points at that field.
type keyLines map[string]int

// at returns the line of key, or def when the key was not written.
func (l keyLines) at(key string, def int) int {
	if n, ok := l[key]; ok {
		return n
	}
	return def
}

// State returns the named state, or nil.
func (f *Flow) State(name string) *State { return f.states[name] }

// Event returns the named event, or nil.
func (f *Flow) Event(name string) *Event { return f.events[name] }

// allows reports whether the actor type may send the event.
func (e *Event) allows(t packline.ActorType) bool {
	for _, a := range e.Actors {
		if a == t {
			return true
		}
	}
	return false
}

func (t *Transition) from(state string) bool {
	for _, s := range t.From {
		if s == state {
			return true
		}
	}
	return false
}

// target is the state the transition leads to from state.
func (t *Transition) target(state string) string {
	if t.To == "" {
		return state
	}
	return t.To
}
