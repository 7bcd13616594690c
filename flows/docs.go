package flows

import (
	"fmt"
	"strings"
)

// docsCommand regenerates docs/flows.md from the built-in flows.
const docsCommand = "go test ./flows -run TestDocsUpToDate -update"

// Docs renders docs/flows.md: for every flow of r, sorted by name, its title,
// seed and description, a table of its states and its Mermaid diagram.
func Docs(r *Registry) string {
	var b strings.Builder
	b.WriteString("# Order flows\n\n")
	fmt.Fprintf(&b, "<!-- Generated from flows/builtin/*.yaml by `%s`. DO NOT EDIT. -->\n\n", docsCommand)
	b.WriteString(`An order moves through the lifecycle (flow) its store runs. A flow is data:
the states an order can be in, the events that move it and who may send each
one (customer, merchant, courier, payment, system), the guards that must hold,
the effects a transition owes (payments, stock, courier labels, notifications)
and the timers that send events later. The built-in flows below come from the
five seed shops and ship in the binary; an operator can add more with
` + "`PACKLINE_FLOWS_DIR`" + `. Flow, state and event names are a public contract:
clients send these event names, dashboards filter on these states and webhooks
carry them.

Every change of state also owes a ` + "`webhook:deliver`" + ` of ` + "`order.<state>`" + ` and a
timeline entry. In the diagrams an edge is labelled with the event and the
actors who may send it; ` + "`automatic`" + ` edges are taken by the engine as soon
as their guard holds; a timer edge names its delay (scaled by
` + "`PACKLINE_TIMER_SCALE`" + `); ` + "`[*]`" + ` leads to the initial state, and
from each terminal state, which an order never leaves. An SLA is how long an
order may stay in a state before it counts as stuck.

This page is generated; to change it, edit the flow files and run
` + "`" + docsCommand + "`" + `.
`)
	for _, name := range r.Names() {
		f := r.Get(name)
		fmt.Fprintf(&b, "\n## %s\n\n", f.Name)
		fmt.Fprintf(&b, "**%s** (seed %s). %s\n\n", f.Title, f.Seed, f.Description)
		fmt.Fprintf(&b, "Initial state: `%s`.\n\n", f.Initial)
		b.WriteString("| state | SLA | terminal | description |\n")
		b.WriteString("|---|---|---|---|\n")
		for _, s := range f.States {
			sla, terminal := "", ""
			if s.SLA > 0 {
				sla = formatDuration(s.SLA)
			}
			if s.Terminal {
				terminal = "yes"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", s.Name, sla, terminal, tableCell(s.Description))
		}
		b.WriteString("\n```mermaid\n")
		b.WriteString(f.Mermaid())
		b.WriteString("```\n")
	}
	return b.String()
}

// tableCell keeps text inside one Markdown table cell.
func tableCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
