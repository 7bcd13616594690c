package flows

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/packline/packline"
)

// maxAutomatic bounds how many automatic transitions one event may chain.
const maxAutomatic = 16

// Input is one event sent to an order.
type Input struct {
	Event string
	Actor packline.Actor
	// Data is the event's data object, as decoded with json.Decoder.UseNumber.
	Data map[string]any
	Note string
	Now  time.Time
	// TimerScale multiplies every timer delay (PACKLINE_TIMER_SCALE); 0 means 1.
	TimerScale float64
}

// Step is one timeline entry the event produces: the event itself, then any
// automatic transitions it set off.
type Step struct {
	Event string
	From  string
	To    string
	Actor packline.Actor
	Note  string
	Data  json.RawMessage
}

// Effect is work a committed transition owes, run by the fleet.
type Effect struct {
	Type     string `json:"type"`
	Template string `json:"template,omitempty"`
	To       string `json:"to,omitempty"`
	// Webhook is the webhook event type for webhook:deliver (order.shipped).
	Webhook string `json:"webhook,omitempty"`
	// Amount in minor units for payment effects (0: the order total).
	Amount  int64  `json:"amount,omitempty"`
	Purpose string `json:"purpose,omitempty"`
	// Event is the event that owed the effect; Data its data.
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Timer is a delayed event: at RunAt the system sends Event, and it acts only
// if the order is still in one of States (and, when StateVersion is set, has
// not left and re-entered it since).
type Timer struct {
	Event        string    `json:"event"`
	RunAt        time.Time `json:"run_at"`
	States       []string  `json:"states"`
	StateVersion int64     `json:"state_version,omitempty"`
}

// StillIn reports whether o is still in one of states and, when
// stateVersion is set, has not left and re-entered it since: the check a
// timer makes before it acts (Timer.States and StateVersion), and any
// event sent only for some states.
func StillIn(o *packline.Order, states []string, stateVersion int64) bool {
	for _, s := range states {
		if s == o.Status {
			return stateVersion == 0 || stateVersion == o.StateVersion
		}
	}
	return false
}

// Result is what applying an event produces. Order is the order after the
// event (status, version, flags, amounts); the store commits it with
// compare-and-set on the old version.
type Result struct {
	Order   packline.Order
	Steps   []Step
	Effects []Effect
	Timers  []Timer
}

// Start opens a new order's lifecycle: the initial state, its effects, its
// timers and any automatic transitions.
func (f *Flow) Start(o packline.Order, actor packline.Actor, now time.Time, scale float64) (Result, error) {
	o.Flow = f.Name
	o.Status = f.Initial
	o.Version = 1
	o.StateVersion = 1
	o.Flags = o.Flags.Clone()
	o.CreatedAt, o.UpdatedAt = now, now
	r := Result{Order: o}
	r.Steps = append(r.Steps, Step{Event: "created", To: f.Initial, Actor: actor})
	r.addEffects(f.OnCreate, &r.Order, "created", nil, true)
	r.Effects = append(r.Effects, webhook("order."+f.Initial, "created", nil))
	f.armState(&r, f.Initial, now, scale)
	f.armDated(&r, now, scale)
	if err := f.automatic(&r, now, scale); err != nil {
		return Result{}, err
	}
	return r, nil
}

// Apply sends one event to an order. It returns an *packline.Error: EINVALID
// for an unknown event or bad data, ECONFLICT (with AllowedEvents) for an
// event the actor may not send from the order's state.
func (f *Flow) Apply(o packline.Order, in Input) (Result, error) {
	ev := f.events[in.Event]
	if ev == nil {
		return Result{}, &packline.Error{Code: packline.EINVALID, Field: "event",
			Message:       fmt.Sprintf("unknown event %q for flow %s", in.Event, f.Name),
			AllowedEvents: f.AllowedEvents(&o, in.Actor.Type)}
	}
	if !ev.allows(in.Actor.Type) {
		return Result{}, &packline.Error{Code: packline.ECONFLICT,
			Message:       fmt.Sprintf("event %s cannot be sent by a %s", ev.Name, in.Actor.Type),
			AllowedEvents: f.AllowedEvents(&o, in.Actor.Type)}
	}
	if err := ev.checkData(in.Data, in.Actor.Type); err != nil {
		return Result{}, err
	}
	work := o
	work.Flags = o.Flags.Clone()
	if ev.Apply == "record_payment" {
		amt, _ := intValue(in.Data["amount"])
		if amt > math.MaxInt64-work.AmountPaid {
			return Result{}, packline.FieldError("data.amount", "amount would overflow the amount paid")
		}
		work.AmountPaid += amt
	}
	var t *Transition
	var failed []Guard
	fromOK := false
	for _, c := range ev.Transitions {
		if !c.from(work.Status) {
			continue
		}
		fromOK = true
		if g, ok := f.guardsHold(c.Guards, &work); ok {
			t = c
			break
		} else if failed == nil {
			failed = []Guard{g}
		}
	}
	if t == nil {
		msg := fmt.Sprintf("event %s is not allowed in state %s", ev.Name, o.Status)
		if fromOK {
			msg = fmt.Sprintf("event %s is not possible in state %s yet: %s", ev.Name, o.Status, describeGuard(failed[0]))
		}
		return Result{}, &packline.Error{Code: packline.ECONFLICT, Message: msg,
			AllowedEvents: f.AllowedEvents(&o, in.Actor.Type)}
	}
	var data json.RawMessage
	if len(in.Data) > 0 {
		data, _ = json.Marshal(in.Data)
	}
	work.Version = o.Version + 1
	work.UpdatedAt = in.Now
	r := Result{Order: work}
	f.take(&r, t, ev.Name, in.Actor, in.Note, data, in.Now, in.TimerScale)
	if err := f.automatic(&r, in.Now, in.TimerScale); err != nil {
		return Result{}, err
	}
	return r, nil
}

// take applies one chosen transition to r.Order and records its step,
// effects, webhook and timers.
func (f *Flow) take(r *Result, t *Transition, event string, actor packline.Actor, note string, data json.RawMessage, now time.Time, scale float64) {
	from := r.Order.Status
	to := t.target(from)
	r.addEffects(t.Effects, &r.Order, event, data, true)
	for _, s := range t.Set {
		r.Order.Flags[s] = true
	}
	for _, s := range t.Unset {
		delete(r.Order.Flags, s)
	}
	r.Order.Status = to
	r.Steps = append(r.Steps, Step{Event: event, From: from, To: to, Actor: actor, Note: note, Data: data})
	switch {
	case t.Webhook != "":
		r.Effects = append(r.Effects, webhook(t.Webhook, event, data))
	case from != to:
		r.Effects = append(r.Effects, webhook("order."+to, event, data))
	}
	if from != to {
		r.Order.StateVersion = r.Order.Version
		f.armState(r, to, now, scale)
	}
}

// webhook is the webhook:deliver of a webhook event type, owed by event.
func webhook(typ, event string, data json.RawMessage) Effect {
	return Effect{Type: string(EffectWebhookDeliver), Webhook: typ, Event: event, Data: data}
}

func (f *Flow) automatic(r *Result, now time.Time, scale float64) error {
	for n := 0; ; n++ {
		var next *Transition
		for _, t := range f.Automatic {
			if _, ok := f.guardsHold(t.Guards, &r.Order); ok && t.from(r.Order.Status) {
				next = t
				break
			}
		}
		if next == nil {
			return nil
		}
		if n == maxAutomatic {
			return fmt.Errorf("flow %s: more than %d automatic transitions in a row from %s", f.Name, maxAutomatic, r.Order.Status)
		}
		f.take(r, next, "automatic", packline.Actor{Type: packline.ActorSystem}, "", nil, now, scale)
	}
}

func (r *Result) addEffects(specs []EffectSpec, o *packline.Order, event string, data json.RawMessage, _ bool) {
	for _, s := range specs {
		if s.If != nil && !guardHolds(*s.If, o) {
			continue
		}
		e := Effect{Type: s.Type, Template: s.Template, To: s.To, Purpose: s.Purpose, Event: event, Data: data}
		if s.AmountMajor > 0 {
			e.Amount = packline.MinorUnits(o.Currency, s.AmountMajor)
		}
		r.Effects = append(r.Effects, e)
	}
}

// armState sets the timers that start when an order enters state.
func (f *Flow) armState(r *Result, state string, now time.Time, scale float64) {
	for _, t := range f.Timers {
		if t.In == state {
			r.Timers = append(r.Timers, Timer{Event: t.Event, RunAt: now.Add(Scale(t.After, scale)),
				States: []string{state}, StateVersion: r.Order.StateVersion})
		}
	}
}

// armDated sets the timers relative to an order date (ship date at risk).
func (f *Flow) armDated(r *Result, now time.Time, scale float64) {
	if r.Order.ShipDate == "" {
		return
	}
	day, err := time.Parse(time.DateOnly, r.Order.ShipDate)
	if err != nil {
		return
	}
	for _, t := range f.Timers {
		if t.Before != "ship_date" {
			continue
		}
		due := day.Add(-t.Offset)
		delay := due.Sub(now)
		if delay < 0 {
			delay = 0
		}
		r.Timers = append(r.Timers, Timer{Event: t.Event, RunAt: now.Add(Scale(delay, scale)), States: t.While})
	}
}

// Scale multiplies a timer delay by the timer scale (0 means 1).
func Scale(d time.Duration, scale float64) time.Duration {
	if scale <= 0 || scale == 1 {
		return d
	}
	return time.Duration(float64(d) * scale)
}

func guardHolds(g Guard, o *packline.Order) bool {
	var v bool
	if fn, ok := builtinGuards[g.Name]; ok {
		v = fn(o)
	} else {
		v = o.Flags[g.Name]
	}
	return v != g.Negate
}

// guardsHold reports whether all guards hold, and the first that does not.
func (f *Flow) guardsHold(gs []Guard, o *packline.Order) (Guard, bool) {
	for _, g := range gs {
		if !guardHolds(g, o) {
			return g, false
		}
	}
	return Guard{}, true
}

func describeGuard(g Guard) string {
	words := strings.ReplaceAll(g.Name, "_", " ")
	if g.Negate {
		return "needs not " + words
	}
	return "needs " + words
}

// AllowedEvents lists, in flow order, the events the actor type may send to
// the order now (every actor when t is empty).
func (f *Flow) AllowedEvents(o *packline.Order, t packline.ActorType) []string {
	out := []string{}
	for _, e := range f.Events {
		if t != "" && !e.allows(t) {
			continue
		}
		for _, tr := range e.Transitions {
			if !tr.from(o.Status) {
				continue
			}
			// Guards that depend on the event's data (payments reaching the
			// total) cannot be judged here; an event counts as allowed when
			// some transition from this state could be taken.
			if _, ok := f.guardsHold(tr.Guards, o); ok || e.Apply != "" {
				out = append(out, e.Name)
				break
			}
		}
	}
	return out
}

// EventNames lists every event of the flow, sorted.
func (f *Flow) EventNames() []string {
	out := make([]string, 0, len(f.Events))
	for _, e := range f.Events {
		out = append(out, e.Name)
	}
	sort.Strings(out)
	return out
}

// checkData validates an event's data against its declared fields. An event
// that declares fields accepts no others; one that declares none takes no
// data from a customer or merchant (what they send is stored on the
// timeline), but whatever a worker, courier or payment provider reports.
func (e *Event) checkData(data map[string]any, actor packline.ActorType) error {
	if len(e.Data) == 0 && actor != packline.ActorCustomer && actor != packline.ActorMerchant {
		return nil
	}
	known := map[string]*DataField{}
	for _, d := range e.Data {
		known[d.Name] = d
		v, ok := data[d.Name]
		if !ok || v == nil {
			if d.Required {
				return packline.FieldError("data."+d.Name, "%s needs data.%s", e.Name, d.Name)
			}
			continue
		}
		field := "data." + d.Name
		switch d.Type {
		case "string":
			s, ok := v.(string)
			if !ok {
				return packline.FieldError(field, "must be a string")
			}
			if d.MaxLength > 0 && len(s) > d.MaxLength {
				return packline.FieldError(field, "must be at most %d bytes", d.MaxLength)
			}
			if len(d.Enum) > 0 && !contains(d.Enum, s) {
				return packline.FieldError(field, "must be one of %s", strings.Join(d.Enum, ", "))
			}
		case "integer":
			n, ok := intValue(v)
			if !ok {
				return packline.FieldError(field, "must be an integer")
			}
			if d.Min != nil && n < *d.Min {
				return packline.FieldError(field, "must be at least %d", *d.Min)
			}
			if d.Max != nil && n > *d.Max {
				return packline.FieldError(field, "must be at most %d", *d.Max)
			}
		case "boolean":
			if _, ok := v.(bool); !ok {
				return packline.FieldError(field, "must be true or false")
			}
		}
	}
	var unknown []string
	for k := range data {
		if known[k] == nil {
			unknown = append(unknown, k)
		}
	}
	switch sort.Strings(unknown); len(unknown) {
	case 0:
		return nil
	case 1:
		return packline.FieldError("data."+unknown[0], "event %s takes no field %s", e.Name, unknown[0])
	}
	return packline.FieldError("data."+unknown[0], "event %s takes no fields %s", e.Name, strings.Join(unknown, ", "))
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// intValue reads an integer from a decoded JSON value (json.Number, float64
// without a fraction, or a Go integer).
func intValue(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float64:
		// float64(math.MaxInt64) rounds up to 2^63, which does not fit.
		if n != math.Trunc(n) || n >= math.MaxInt64 || n < math.MinInt64 {
			return 0, false
		}
		return int64(n), true
	case int:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}
