package api

import (
	"os"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The spec and the router must describe the same routes.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	src, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(src, &spec); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	var inSpec, inRouter []string
	for path, ops := range spec.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch":
				inSpec = append(inSpec, strings.ToUpper(method)+" "+path)
			}
		}
	}
	for _, rt := range routes {
		inRouter = append(inRouter, rt.method+" "+rt.pattern)
	}
	sort.Strings(inSpec)
	sort.Strings(inRouter)
	if strings.Join(inSpec, "\n") != strings.Join(inRouter, "\n") {
		t.Fatalf("openapi.yaml and the router disagree\nspec:\n  %s\nrouter:\n  %s",
			strings.Join(inSpec, "\n  "), strings.Join(inRouter, "\n  "))
	}
}
