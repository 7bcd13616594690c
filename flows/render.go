package flows

import (
	"fmt"
	"strings"
	"time"

	"github.com/packline/packline"
)

// edge is one arrow of a flow diagram: a (from, to, event) triple, or an
// automatic transition, with its label.
type edge struct {
	From, To string
	Label    string
}

// edges lists the arrows of the diagram in file order: events and their
// transitions, then automatic transitions. An event that a timer sends from a
// state is labelled with the timer ("expire (timer 24h)") instead of the
// system actor.
func (f *Flow) edges() []edge {
	var out []edge
	seen := map[[3]string]bool{}
	add := func(from, to, event, label string) {
		k := [3]string{from, to, event}
		if seen[k] {
			return
		}
		seen[k] = true
		out = append(out, edge{From: from, To: to, Label: label})
	}
	for _, e := range f.Events {
		for _, t := range e.Transitions {
			for _, from := range t.From {
				add(from, t.target(from), e.Name, f.edgeLabel(e, from))
			}
		}
	}
	for _, t := range f.Automatic {
		for _, from := range t.From {
			add(from, t.target(from), "", "automatic")
		}
	}
	return out
}

// edgeLabel is "event (actors)", with the timer that sends the event from
// state in place of the system actor.
func (f *Flow) edgeLabel(e *Event, state string) string {
	timer := f.timerFor(e.Name, state)
	var who []string
	for _, a := range e.Actors {
		if a == packline.ActorSystem && timer != "" {
			continue
		}
		who = append(who, string(a))
	}
	if timer != "" {
		who = append(who, timer)
	}
	return fmt.Sprintf("%s (%s)", e.Name, strings.Join(who, ", "))
}

// timerFor describes the timer that sends event while the order is in state
// ("timer 24h", "timer 3d before ship_date"), or "" when there is none.
func (f *Flow) timerFor(event, state string) string {
	for _, t := range f.Timers {
		if t.Event != event {
			continue
		}
		if t.In == state {
			return "timer " + formatDuration(t.After)
		}
		if t.Before != "" && contains(t.While, state) {
			return fmt.Sprintf("timer %s before %s", formatDuration(t.Offset), t.Before)
		}
	}
	return ""
}

// formatDuration writes a duration the way flow files do: "24h", "7d",
// "1h30m"; whole days from two days up, hours below.
func formatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == 0:
		return "0"
	case d%day == 0 && d >= 2*day:
		return fmt.Sprintf("%dd", d/day)
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Mermaid renders the flow as a Mermaid stateDiagram-v2: the initial state,
// one edge per (from, to, event) labelled with the event and its actors,
// automatic transitions, timers, and the terminal states. The output depends
// only on the flow file, in its order.
func (f *Flow) Mermaid() string {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	fmt.Fprintf(&b, "    [*] --> %s\n", f.Initial)
	for _, e := range f.edges() {
		fmt.Fprintf(&b, "    %s --> %s: %s\n", e.From, e.To, e.Label)
	}
	for _, s := range f.States {
		if s.Terminal {
			fmt.Fprintf(&b, "    %s --> [*]\n", s.Name)
		}
	}
	return b.String()
}

// DOT renders the same diagram as Mermaid for Graphviz (dot -Tsvg).
func (f *Flow) DOT() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(f.Name))
	b.WriteString("    rankdir=LR;\n")
	b.WriteString("    node [shape=box, style=rounded];\n")
	b.WriteString("    \"__start\" [shape=point, label=\"\"];\n")
	terminal := false
	for _, s := range f.States {
		if s.Terminal {
			terminal = true
			fmt.Fprintf(&b, "    %s [peripheries=2];\n", dotQuote(s.Name))
		} else {
			fmt.Fprintf(&b, "    %s;\n", dotQuote(s.Name))
		}
	}
	if terminal {
		b.WriteString("    \"__end\" [shape=doublecircle, label=\"\", width=0.15];\n")
	}
	fmt.Fprintf(&b, "    \"__start\" -> %s;\n", dotQuote(f.Initial))
	for _, e := range f.edges() {
		fmt.Fprintf(&b, "    %s -> %s [label=%s];\n", dotQuote(e.From), dotQuote(e.To), dotQuote(e.Label))
	}
	for _, s := range f.States {
		if s.Terminal {
			fmt.Fprintf(&b, "    %s -> \"__end\";\n", dotQuote(s.Name))
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// Render renders the flow as "mermaid" or "dot".
func (f *Flow) Render(format string) (string, error) {
	switch format {
	case "mermaid":
		return f.Mermaid(), nil
	case "dot":
		return f.DOT(), nil
	}
	return "", fmt.Errorf("render flow %s: unknown format %q (use mermaid or dot)", f.Name, format)
}

func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
