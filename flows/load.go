package flows

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/packline/packline"
	"go.yaml.in/yaml/v3"
)

// LoadError is a flow file that cannot be used: it names the file, the line
// and the problem.
type LoadError struct {
	File string
	Line int
	Msg  string
}

func (e *LoadError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
var flowNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

type parser struct {
	file string
}

func (p *parser) errf(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &LoadError{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// Parse reads one flow file and validates it. file names the source in
// error messages.
func Parse(file string, src []byte) (*Flow, error) {
	p := &parser{file: file}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &LoadError{File: file, Msg: "the file is empty"}
		}
		return nil, yamlError(file, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, p.errf(&doc, "a flow file is a mapping with name, initial, states and events")
	}
	f, err := p.flow(doc.Content[0])
	if err != nil {
		return nil, err
	}
	f.Source = file
	if err := p.validate(f); err != nil {
		return nil, err
	}
	return f, nil
}

// yamlLineRE matches the line yaml.v3 puts in its syntax errors.
var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: did not find
// expected key") into a LoadError that carries the line like every other.
func yamlError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &LoadError{File: file, Line: line, Msg: "not valid YAML: " + m[2]}
	}
	return &LoadError{File: file, Msg: "not valid YAML: " + msg}
}

// fields walks a mapping node, calling fn for each key; a key fn does not
// know is an error naming it.
func (p *parser) fields(n *yaml.Node, what string, fn func(key string, k, v *yaml.Node) (bool, error)) error {
	if n.Kind != yaml.MappingNode {
		return p.errf(n, "%s must be a mapping", what)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return p.errf(k, "duplicate key %q in %s", k.Value, what)
		}
		seen[k.Value] = true
		ok, err := fn(k.Value, k, v)
		if err != nil {
			return err
		}
		if !ok {
			return p.errf(k, "unknown key %q in %s", k.Value, what)
		}
	}
	return nil
}

func (p *parser) str(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.errf(n, "%s must be a string", what)
	}
	return n.Value, nil
}

func (p *parser) boolean(n *yaml.Node, what string) (bool, error) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		return false, p.errf(n, "%s must be true or false", what)
	}
	return b, nil
}

func (p *parser) integer(n *yaml.Node, what string) (int64, error) {
	var i int64
	if n.Kind != yaml.ScalarNode || n.Decode(&i) != nil {
		return 0, p.errf(n, "%s must be an integer", what)
	}
	return i, nil
}

// strs accepts a string or a list of strings.
func (p *parser) strs(n *yaml.Node, what string) ([]string, error) {
	if n.Kind == yaml.ScalarNode {
		s, err := p.str(n, what)
		return []string{s}, err
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "%s must be a string or a list of strings", what)
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		s, err := p.str(c, what)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// ParseDuration reads a Go duration with an extra "d" unit for days ("7d",
// "36h", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	var total time.Duration
	rest := s
	if i := strings.Index(rest, "d"); i > 0 {
		days, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil || days < 0 || days > math.MaxInt64/float64(24*time.Hour) {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		total = time.Duration(days * float64(24*time.Hour))
		rest = rest[i+1:]
		if rest == "" {
			return total, nil
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q (use 90m, 24h, 7d)", s)
	}
	return total + d, nil
}

func (p *parser) duration(n *yaml.Node, what string) (time.Duration, error) {
	s, err := p.str(n, what)
	if err != nil {
		return 0, err
	}
	d, err := ParseDuration(s)
	if err != nil {
		return 0, p.errf(n, "%s: %v", what, err)
	}
	return d, nil
}

func (p *parser) flow(n *yaml.Node) (*Flow, error) {
	f := &Flow{states: map[string]*State{}, events: map[string]*Event{}, flags: map[string]bool{}}
	var statesNode, eventsNode *yaml.Node
	err := p.fields(n, "the flow", func(key string, k, v *yaml.Node) (bool, error) {
		var err error
		switch key {
		case "name":
			f.Name, err = p.str(v, "name")
			if err == nil && !flowNameRE.MatchString(f.Name) {
				err = p.errf(v, "flow name %q must be lower-case letters, digits and dashes", f.Name)
			}
		case "title":
			f.Title, err = p.str(v, "title")
		case "description":
			f.Description, err = p.str(v, "description")
		case "seed":
			f.Seed, err = p.str(v, "seed")
		case "initial":
			f.Initial, err = p.str(v, "initial")
			f.initialLine = v.Line
		case "flags":
			err = p.flags(f, v)
		case "on_create":
			f.OnCreate, err = p.effects(v)
		case "states":
			statesNode = v
		case "events":
			eventsNode = v
		case "automatic":
			f.Automatic, err = list(p, v, "automatic must be a list of transitions", func(c *yaml.Node) (*Transition, error) {
				return p.transition(c, "an automatic transition")
			})
		case "timers":
			f.Timers, err = list(p, v, "timers must be a list", p.timer)
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil {
		return nil, err
	}
	for _, missing := range []struct {
		absent bool
		what   string
	}{{f.Name == "", "no name"}, {f.Initial == "", "no initial state"}, {statesNode == nil, "no states"}, {eventsNode == nil, "no events"}} {
		if missing.absent {
			return nil, p.errf(n, "the flow has %s", missing.what)
		}
	}
	if err := p.states(f, statesNode); err != nil {
		return nil, err
	}
	if err := p.events(f, eventsNode); err != nil {
		return nil, err
	}
	return f, nil
}

// list parses a YAML sequence, each item with item; notList is the error
// for a node that is not a sequence.
func list[T any](p *parser, n *yaml.Node, notList string, item func(*yaml.Node) (T, error)) ([]T, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "%s", notList)
	}
	out := make([]T, 0, len(n.Content))
	for _, c := range n.Content {
		t, err := item(c)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// flags parses the flow's flags: unique, and none named as a builtin guard.
func (p *parser) flags(f *Flow, v *yaml.Node) error {
	var err error
	if f.Flags, err = p.strs(v, "flags"); err != nil {
		return err
	}
	for _, fl := range f.Flags {
		if f.flags[fl] {
			return p.errf(v, "duplicate flag %q", fl)
		}
		if _, builtin := builtinGuards[fl]; builtin {
			return p.errf(v, "flag %q has the name of a builtin guard", fl)
		}
		f.flags[fl] = true
	}
	return nil
}

// states parses the flow's states, in their order.
func (p *parser) states(f *Flow, n *yaml.Node) error {
	return p.fields(n, "states", func(key string, k, v *yaml.Node) (bool, error) {
		if !nameRE.MatchString(key) {
			return true, p.errf(k, "state name %q must be snake_case", key)
		}
		s := &State{Name: key, line: k.Line}
		f.States = append(f.States, s)
		f.states[key] = s
		if v.Kind == yaml.ScalarNode && (v.Tag == "!!null" || v.Value == "") {
			return true, nil
		}
		return true, p.fields(v, "state "+key, func(key string, k, v *yaml.Node) (bool, error) {
			var err error
			switch key {
			case "terminal":
				s.Terminal, err = p.boolean(v, "terminal")
			case "sla":
				s.SLA, err = p.duration(v, "sla")
			case "description":
				s.Description, err = p.str(v, "description")
			default:
				return false, nil
			}
			return true, err
		})
	})
}

// events parses the flow's events, in their order.
func (p *parser) events(f *Flow, n *yaml.Node) error {
	return p.fields(n, "events", func(key string, k, v *yaml.Node) (bool, error) {
		if !nameRE.MatchString(key) {
			return true, p.errf(k, "event name %q must be snake_case", key)
		}
		e, err := p.event(key, k, v)
		if err != nil {
			return true, err
		}
		f.Events = append(f.Events, e)
		f.events[key] = e
		return true, nil
	})
}

func (p *parser) event(name string, k, n *yaml.Node) (*Event, error) {
	e := &Event{Name: name, line: k.Line}
	var actorsNode *yaml.Node
	err := p.fields(n, "event "+name, func(key string, k, v *yaml.Node) (bool, error) {
		var err error
		switch key {
		case "description":
			e.Description, err = p.str(v, "description")
		case "actors":
			actorsNode = v
			var as []string
			as, err = p.strs(v, "actors")
			for _, a := range as {
				t := packline.ActorType(a)
				if !t.Valid() {
					return true, p.errf(v, "event %s: unknown actor %q (customer, merchant, courier, payment, system)", name, a)
				}
				e.Actors = append(e.Actors, t)
			}
		case "apply":
			e.Apply, err = p.str(v, "apply")
			if err == nil && !builtinActions[e.Apply] {
				err = p.errf(v, "event %s: unknown action %q", name, e.Apply)
			}
		case "data":
			err = p.fields(v, "data of event "+name, func(key string, k, v *yaml.Node) (bool, error) {
				d, err := p.dataField(key, v)
				e.Data = append(e.Data, d)
				return true, err
			})
		case "transitions":
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				return true, p.errf(v, "event %s: transitions must be a non-empty list", name)
			}
			for _, c := range v.Content {
				t, err := p.transition(c, "a transition of event "+name)
				if err != nil {
					return true, err
				}
				e.Transitions = append(e.Transitions, t)
			}
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil {
		return nil, err
	}
	if len(e.Actors) == 0 {
		at := k
		if actorsNode != nil {
			at = actorsNode
		}
		return nil, p.errf(at, "event %s has no actors", name)
	}
	if len(e.Transitions) == 0 {
		return nil, p.errf(k, "event %s has no transitions", name)
	}
	return e, nil
}

func (p *parser) dataField(name string, n *yaml.Node) (*DataField, error) {
	d := &DataField{Name: name}
	err := p.fields(n, "data field "+name, func(key string, k, v *yaml.Node) (bool, error) {
		var err error
		switch key {
		case "type":
			d.Type, err = p.str(v, "type")
			if err == nil && d.Type != "string" && d.Type != "integer" && d.Type != "boolean" {
				err = p.errf(v, "data field %s: type must be string, integer or boolean", name)
			}
		case "required":
			d.Required, err = p.boolean(v, "required")
		case "enum":
			d.Enum, err = p.strs(v, "enum")
		case "min":
			var i int64
			i, err = p.integer(v, "min")
			d.Min = &i
		case "max":
			var i int64
			i, err = p.integer(v, "max")
			d.Max = &i
		case "max_length":
			var i int64
			i, err = p.integer(v, "max_length")
			d.MaxLength = int(i)
		default:
			return false, nil
		}
		return true, err
	})
	if err == nil && d.Type == "" {
		err = p.errf(n, "data field %s has no type", name)
	}
	return d, err
}

func (p *parser) guards(n *yaml.Node) ([]Guard, error) {
	ss, err := p.strs(n, "guard")
	if err != nil {
		return nil, err
	}
	out := make([]Guard, 0, len(ss))
	for _, s := range ss {
		g := Guard{Name: strings.TrimPrefix(s, "!"), Negate: strings.HasPrefix(s, "!")}
		out = append(out, g)
	}
	return out, nil
}

func (p *parser) transition(n *yaml.Node, what string) (*Transition, error) {
	t := &Transition{line: n.Line, lines: keyLines{}}
	err := p.fields(n, what, func(key string, k, v *yaml.Node) (bool, error) {
		var err error
		t.lines[key] = v.Line
		switch key {
		case "from":
			t.From, err = p.strs(v, "from")
		case "to":
			t.To, err = p.str(v, "to")
		case "guard":
			t.Guards, err = p.guards(v)
		case "set":
			t.Set, err = p.strs(v, "set")
		case "unset":
			t.Unset, err = p.strs(v, "unset")
		case "effects":
			t.Effects, err = p.effects(v)
		case "webhook":
			t.Webhook, err = p.str(v, "webhook")
		default:
			return false, nil
		}
		return true, err
	})
	if err == nil && len(t.From) == 0 {
		err = p.errf(n, "%s has no from", what)
	}
	return t, err
}

// messageEffects are the effect types of the shorthand keys email and sms.
var messageEffects = map[string]EffectType{"email": EffectNotifyEmail, "sms": EffectNotifySMS}

func (p *parser) effects(n *yaml.Node) ([]EffectSpec, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "effects must be a list")
	}
	var out []EffectSpec
	for _, c := range n.Content {
		e := EffectSpec{line: c.Line}
		if c.Kind == yaml.ScalarNode {
			e.Type = c.Value
			out = append(out, e)
			continue
		}
		err := p.fields(c, "an effect", func(key string, k, v *yaml.Node) (bool, error) {
			var err error
			switch key {
			case "do":
				e.Type, err = p.str(v, "do")
			case "email", "sms":
				// Shorthand: {email: receipt, to: customer}.
				e.Type = string(messageEffects[key])
				e.Template, err = p.str(v, key)
			case "template":
				e.Template, err = p.str(v, "template")
			case "to":
				e.To, err = p.str(v, "to")
			case "if":
				var gs []Guard
				gs, err = p.guards(v)
				if err == nil && len(gs) != 1 {
					err = p.errf(v, "if takes one guard")
				}
				if err == nil {
					e.If = &gs[0]
				}
			case "amount":
				e.AmountMajor, err = p.integer(v, "amount")
			case "purpose":
				e.Purpose, err = p.str(v, "purpose")
			default:
				return false, nil
			}
			return true, err
		})
		if err != nil {
			return nil, err
		}
		if info, _ := EffectOf(EffectType(e.Type)); info.Message && e.To == "" {
			e.To = "customer"
		}
		out = append(out, e)
	}
	return out, nil
}

func (p *parser) timer(n *yaml.Node) (*TimerSpec, error) {
	t := &TimerSpec{line: n.Line, lines: keyLines{}}
	err := p.fields(n, "a timer", func(key string, k, v *yaml.Node) (bool, error) {
		var err error
		t.lines[key] = v.Line
		switch key {
		case "event":
			t.Event, err = p.str(v, "event")
		case "in":
			t.In, err = p.str(v, "in")
		case "after":
			t.After, err = p.duration(v, "after")
		case "before":
			t.Before, err = p.str(v, "before")
			if err == nil && t.Before != "ship_date" {
				err = p.errf(v, "a timer can only be set before ship_date, not %q", t.Before)
			}
		case "offset":
			t.Offset, err = p.duration(v, "offset")
		case "while":
			t.While, err = p.strs(v, "while")
		default:
			return false, nil
		}
		return true, err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case t.Event == "":
		return nil, p.errf(n, "a timer has no event")
	case (t.In == "") == (t.Before == ""):
		return nil, p.errf(n, "timer %s needs exactly one of in (a state) or before (a date field)", t.Event)
	case t.In != "" && t.After <= 0:
		return nil, p.errf(n, "timer %s needs a positive after", t.Event)
	case t.Before != "" && len(t.While) == 0:
		return nil, p.errf(n, "timer %s needs while: the states in which it may fire", t.Event)
	}
	return t, nil
}
