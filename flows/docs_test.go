package flows

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/flows.md from the built-in flows")

// docsPath is docs/flows.md, seen from the package directory.
var docsPath = filepath.Join("..", "docs", "flows.md")

func TestDocsUpToDate(t *testing.T) {
	r, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	want := Docs(r)
	if *update {
		if err := os.MkdirAll(filepath.Dir(docsPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(docsPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatalf("read %s: %v\nrun: %s", docsPath, err, docsCommand)
	}
	if string(got) != want {
		t.Fatalf("%s is out of date (first difference at line %d)\nrun: %s",
			docsPath, firstDiffLine(string(got), want), docsCommand)
	}
}

func firstDiffLine(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range al {
		if i >= len(bl) || al[i] != bl[i] {
			return i + 1
		}
	}
	return len(al) + 1
}

func TestDocsContent(t *testing.T) {
	t.Parallel()
	r := builtin(t)
	doc := Docs(r)
	// Sorted by name, each with its table and diagram.
	last := -1
	for _, name := range []string{"cash-on-delivery", "made-to-order", "prepaid-simple", "request-approval", "wholesale"} {
		i := strings.Index(doc, "\n## "+name+"\n")
		if i < 0 {
			t.Fatalf("no heading for %s", name)
		}
		if i < last {
			t.Errorf("%s is out of order", name)
		}
		last = i
		f := r.Get(name)
		if !strings.Contains(doc, "```mermaid\n"+f.Mermaid()+"```\n") {
			t.Errorf("%s: diagram missing", name)
		}
		if !strings.Contains(doc, "**"+f.Title+"** (seed "+f.Seed+"). "+f.Description+"\n") {
			t.Errorf("%s: title, seed or description missing", name)
		}
	}
	for _, row := range []string{
		"| `pending_payment` | 24h |  | Checkout started; the provider has not confirmed payment |\n",
		"| `refunded` |  | yes | Money returned |\n",
		"| `in_production` | 60d |  | On the factory floor |\n",
		"| `shipped` | 10d |  | With the courier |\n",
		"| `pending` | 2d |  | Placed, not yet confirmed by phone |\n",
	} {
		if !strings.Contains(doc, row) {
			t.Errorf("docs lack the row %q", row)
		}
	}
}
