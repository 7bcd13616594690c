package flows

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestMermaidWholesale(t *testing.T) {
	t.Parallel()
	want := `stateDiagram-v2
    [*] --> draft
    draft --> confirmed: confirm (merchant)
    confirmed --> in_production: start_production (merchant)
    in_production --> shipped: ship (merchant)
    in_production --> in_production: ship (merchant)
    in_production --> shipped: label_created (system)
    in_production --> in_production: label_created (system)
    shipped --> shipped: label_created (system)
    invoiced --> invoiced: label_created (system)
    shipped --> invoiced: invoice (merchant)
    invoiced --> paid: record_payment (merchant, payment)
    invoiced --> invoiced: record_payment (merchant, payment)
    draft --> cancelled: cancel (merchant)
    confirmed --> cancelled: cancel (merchant)
    draft --> draft: ship_date_at_risk (timer 3d before ship_date)
    confirmed --> confirmed: ship_date_at_risk (timer 3d before ship_date)
    in_production --> in_production: ship_date_at_risk (timer 3d before ship_date)
    paid --> [*]
    cancelled --> [*]
`
	if got := builtinFlow(t, "wholesale").Mermaid(); got != want {
		t.Errorf("Mermaid() =\n%s\nwant\n%s", got, want)
	}
}

// renderFlow has an automatic transition, a timer, a self-transition and
// an event two actors share.
const renderFlow = `name: render
initial: cart
flags: [gift]
states:
  cart: {}
  wrapping: {}
  packed: {}
  gone: {terminal: true}
events:
  pack:
    actors: [merchant, courier]
    transitions:
      - {from: [cart, wrapping], to: packed}
      - {from: cart, guard: gift, to: packed}
  note:
    actors: [customer]
    transitions:
      - {from: [cart, packed]}
  drop:
    actors: [system, merchant]
    transitions:
      - {from: [cart, packed], to: gone}
automatic:
  - {from: cart, to: wrapping, guard: gift}
timers:
  - {event: drop, in: packed, after: 90m}
`

func TestMermaidAndDOT(t *testing.T) {
	t.Parallel()
	f, err := Parse("render.yaml", []byte(renderFlow))
	if err != nil {
		t.Fatal(err)
	}
	wantMermaid := `stateDiagram-v2
    [*] --> cart
    cart --> packed: pack (merchant, courier)
    wrapping --> packed: pack (merchant, courier)
    cart --> cart: note (customer)
    packed --> packed: note (customer)
    cart --> gone: drop (system, merchant)
    packed --> gone: drop (merchant, timer 1h30m)
    cart --> wrapping: automatic
    gone --> [*]
`
	wantDOT := `digraph "render" {
    rankdir=LR;
    node [shape=box, style=rounded];
    "__start" [shape=point, label=""];
    "cart";
    "wrapping";
    "packed";
    "gone" [peripheries=2];
    "__end" [shape=doublecircle, label="", width=0.15];
    "__start" -> "cart";
    "cart" -> "packed" [label="pack (merchant, courier)"];
    "wrapping" -> "packed" [label="pack (merchant, courier)"];
    "cart" -> "cart" [label="note (customer)"];
    "packed" -> "packed" [label="note (customer)"];
    "cart" -> "gone" [label="drop (system, merchant)"];
    "packed" -> "gone" [label="drop (merchant, timer 1h30m)"];
    "cart" -> "wrapping" [label="automatic"];
    "gone" -> "__end";
}
`
	if got := f.Mermaid(); got != wantMermaid {
		t.Errorf("Mermaid() =\n%s\nwant\n%s", got, wantMermaid)
	}
	if got := f.DOT(); got != wantDOT {
		t.Errorf("DOT() =\n%s\nwant\n%s", got, wantDOT)
	}
	for format, want := range map[string]string{"mermaid": wantMermaid, "dot": wantDOT} {
		got, err := f.Render(format)
		if err != nil || got != want {
			t.Errorf("Render(%q) = %q, %v", format, got, err)
		}
	}
	for _, format := range []string{"", "svg", "Mermaid", "graphviz"} {
		if got, err := f.Render(format); err == nil || got != "" {
			t.Errorf("Render(%q) = %q, %v; want an error", format, got, err)
		} else if want := fmt.Sprintf("render flow render: unknown format %q (use mermaid or dot)", format); err.Error() != want {
			t.Errorf("Render(%q) error %q, want %q", format, err, want)
		}
	}
}

// TestDiagramsShowEveryTransition checks every built-in flow: each
// (from, to, event) of the flow is one edge, once, and the output is the
// same on every load.
func TestDiagramsShowEveryTransition(t *testing.T) {
	t.Parallel()
	r, again := builtin(t), builtin(t)
	for _, name := range r.Names() {
		f := r.Get(name)
		m, d := f.Mermaid(), f.DOT()
		if m != again.Get(name).Mermaid() || d != again.Get(name).DOT() {
			t.Errorf("%s: diagrams differ between two loads", name)
		}
		lines := strings.Split(m, "\n")
		if lines[0] != "stateDiagram-v2" || lines[1] != "    [*] --> "+f.Initial {
			t.Errorf("%s: Mermaid starts %q", name, lines[:2])
		}
		count := func(prefix string) int {
			n := 0
			for _, l := range lines {
				if strings.HasPrefix(l, prefix) {
					n++
				}
			}
			return n
		}
		for _, e := range f.Events {
			for _, tr := range e.Transitions {
				for _, from := range tr.From {
					prefix := fmt.Sprintf("    %s --> %s: %s (", from, tr.target(from), e.Name)
					if n := count(prefix); n != 1 {
						t.Errorf("%s: %d edges %q, want 1", name, n, prefix)
					}
					if !strings.Contains(d, fmt.Sprintf("%q -> %q [label=\"%s (", from, tr.target(from), e.Name)) {
						t.Errorf("%s: DOT lacks %s -> %s by %s", name, from, tr.target(from), e.Name)
					}
				}
			}
		}
		for _, s := range f.States {
			want := 0
			if s.Terminal {
				want = 1
			}
			if n := count("    " + s.Name + " --> [*]"); n != want {
				t.Errorf("%s: %d end edges for %s, want %d", name, n, s.Name, want)
			}
			if n := strings.Count(d, fmt.Sprintf("%q -> \"__end\"", s.Name)); n != want {
				t.Errorf("%s: DOT has %d end edges for %s, want %d", name, n, s.Name, want)
			}
		}
	}
	mto := builtinFlow(t, "made-to-order").Mermaid()
	for _, l := range []string{
		"    pending_payment --> cancelled: expire (timer 24h)\n",
		"    paid --> pending_customization: automatic\n",
		"    paid --> in_production: automatic\n",
		"    pending_payment --> pending_payment: payment_failed (payment)\n",
		"    refunded --> [*]\n",
	} {
		if !strings.Contains(mto, l) {
			t.Errorf("made-to-order diagram lacks %q", l)
		}
	}
	for flow, l := range map[string]string{
		"request-approval": "    pending_payment --> expired: expire (timer 7d)\n",
		"cash-on-delivery": "    pending --> cancelled: expire (timer 14d)\n",
		"prepaid-simple":   "    shipped --> shipped: request_feedback (timer 3d)\n",
	} {
		if !strings.Contains(builtinFlow(t, flow).Mermaid(), l) {
			t.Errorf("%s diagram lacks %q", flow, l)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                   "0",
		90 * time.Minute:    "1h30m",
		time.Hour:           "1h",
		24 * time.Hour:      "24h",
		36 * time.Hour:      "36h",
		48 * time.Hour:      "2d",
		14 * 24 * time.Hour: "14d",
		45 * time.Second:    "45s",
		30 * time.Minute:    "30m",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestDOTQuotes(t *testing.T) {
	t.Parallel()
	if got, want := dotQuote(`a "b" \c`), `"a \"b\" \\c"`; got != want {
		t.Errorf("dotQuote = %s, want %s", got, want)
	}
}
