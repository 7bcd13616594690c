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

// Every route that takes an API key documents the 429 of its rate limit and
// the RateLimit headers on its successes (ratelimit.go); the signed
// callbacks, which take no key, document neither.
func TestOpenAPIDocumentsRateLimits(t *testing.T) {
	src, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type response struct {
		Ref     string         `yaml:"$ref"`
		Headers map[string]any `yaml:"headers"`
	}
	var spec struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"` // methods, and a path's parameters
	}
	if err := yaml.Unmarshal(src, &spec); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	for _, rt := range routes {
		var op struct {
			Responses map[string]response `yaml:"responses"`
		}
		node := spec.Paths[rt.pattern][strings.ToLower(rt.method)]
		if err := node.Decode(&op); err != nil {
			t.Fatalf("%s %s: %v", rt.method, rt.pattern, err)
		}
		keyed := rt.access != public
		if got := op.Responses["429"].Ref == "#/components/responses/RateLimited"; got != keyed {
			t.Errorf("%s %s: 429 is %q; want RateLimited: %v", rt.method, rt.pattern, op.Responses["429"].Ref, keyed)
		}
		for status, res := range op.Responses {
			if !strings.HasPrefix(status, "2") {
				continue
			}
			_, policy := res.Headers["RateLimit-Policy"]
			_, state := res.Headers["RateLimit"]
			if policy != keyed || state != keyed {
				t.Errorf("%s %s %s: RateLimit-Policy %v, RateLimit %v; want them: %v", rt.method, rt.pattern, status, policy, state, keyed)
			}
		}
	}
}

// Every operation lists the statuses the server can answer it with, each
// with the error schema: 401 and 429 for a keyed route, 403 for a merchant
// one, 404 for a path with an id (one that names nothing, or bytes that
// name nothing), 400, 413 and 422 for a body, 500 everywhere.
func TestOpenAPIListsEveryStatus(t *testing.T) {
	src, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(src, &spec); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	for _, rt := range routes {
		var op struct {
			RequestBody any `yaml:"requestBody"`
			Responses   map[string]struct {
				Ref string `yaml:"$ref"`
			} `yaml:"responses"`
		}
		node := spec.Paths[rt.pattern][strings.ToLower(rt.method)]
		if err := node.Decode(&op); err != nil {
			t.Fatalf("%s %s: %v", rt.method, rt.pattern, err)
		}
		want := []string{"500", "503"}
		if rt.access != public {
			want = append(want, "401", "429")
		}
		if rt.access == merchant {
			want = append(want, "403")
		}
		if strings.Contains(rt.pattern, "{") {
			want = append(want, "404")
		}
		if op.RequestBody != nil {
			want = append(want, "400", "413", "422")
		}
		for _, status := range want {
			res, ok := op.Responses[status]
			if !ok {
				t.Errorf("%s %s does not list %s", rt.method, rt.pattern, status)
				continue
			}
			switch res.Ref {
			case "#/components/responses/Error", "#/components/responses/RateLimited", "#/components/responses/Unavailable":
			default:
				t.Errorf("%s %s %s is %q, not the error schema", rt.method, rt.pattern, status, res.Ref)
			}
		}
	}
}
