package flows

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

//go:embed builtin/*.yaml
var builtinFS embed.FS

// Registry holds the flows a deployment can run, by name.
type Registry struct {
	flows map[string]*Flow
}

// Builtin returns the five built-in flows of FLOWS.md.
func Builtin() (*Registry, error) {
	r := &Registry{flows: map[string]*Flow{}}
	if err := r.loadFS(builtinFS, "builtin"); err != nil {
		return nil, err
	}
	return r, nil
}

// Load returns the built-in flows plus every *.yaml or *.yml flow in dir (when
// dir is not empty). A custom flow may not reuse a built-in flow's name.
func Load(dir string) (*Registry, error) {
	r, err := Builtin()
	if err != nil {
		return nil, err
	}
	if dir == "" {
		return r, nil
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("PACKLINE_FLOWS_DIR: %w", err)
	}
	if err := r.loadFS(os.DirFS(dir), "."); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Registry) loadFS(fsys fs.FS, dir string) error {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		src, err := fs.ReadFile(fsys, filepath.ToSlash(filepath.Join(dir, name)))
		if err != nil {
			return err
		}
		f, err := Parse(name, src)
		if err != nil {
			return err
		}
		if prev := r.flows[f.Name]; prev != nil {
			return &LoadError{File: name, Msg: fmt.Sprintf("flow %q is already defined in %s", f.Name, prev.Source)}
		}
		r.flows[f.Name] = f
	}
	return nil
}

// Get returns the named flow, or nil.
func (r *Registry) Get(name string) *Flow { return r.flows[name] }

// Names lists the flows, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.flows))
	for n := range r.flows {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
