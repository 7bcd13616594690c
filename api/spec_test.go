package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The contract: every request the API tests send and every answer they get
// is checked against openapi.yaml with kin-openapi's openapi3filter, so a
// route, status, header or body that drifts from the spec fails the test
// that saw it.

var spec struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

// specServer is the base URL the spec's router expects (its one server).
const specServer = "http://localhost:8080"

func loadSpec() (*openapi3.T, routers.Router, error) {
	spec.once.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile("openapi.yaml")
		if err != nil {
			spec.err = fmt.Errorf("load openapi.yaml: %w", err)
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			spec.err = fmt.Errorf("openapi.yaml is not a valid OpenAPI document: %w", err)
			return
		}
		openapi3filter.RegisterBodyDecoder("application/pdf", openapi3filter.FileBodyDecoder)
		spec.doc = doc
		spec.router, spec.err = gorillamux.NewRouter(doc)
	})
	return spec.doc, spec.router, spec.err
}

func TestOpenAPIDocumentLoads(t *testing.T) {
	if _, _, err := loadSpec(); err != nil {
		t.Fatal(err)
	}
}

// specChecked wraps h so each exchange is checked against the spec; report
// is told of each disagreement.
func specChecked(h http.Handler, report func(error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			report(fmt.Errorf("read the request body: %w", err))
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		if err := checkExchange(r, body, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			report(fmt.Errorf("%s %s → %d: the spec disagrees: %w\nrequest: %.300q\nresponse: %.500q",
				r.Method, r.URL.RequestURI(), rec.Code, err, body, rec.Body.String()))
		}
	})
}

// specHandler is specChecked reporting to t.
func specHandler(t testing.TB, h http.Handler) http.Handler {
	return specChecked(h, func(err error) { t.Errorf("%v", err) })
}

// checkExchange checks one request and its answer against the spec: a
// request the spec forbids must be refused (4xx); every answer must be one
// the operation lists, with the headers and body the spec gives it. An
// answer to a path or method the spec does not have must be the Error
// schema.
func checkExchange(r *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) error {
	doc, router, err := loadSpec()
	if err != nil {
		return err
	}
	ctx := context.Background()
	vreq, err := http.NewRequestWithContext(ctx, r.Method, specServer+r.URL.RequestURI(), bytes.NewReader(reqBody))
	if err != nil {
		return nil // a request URI net/http took but cannot make again: nothing to check it with
	}
	vreq.Header = r.Header.Clone()
	if len(reqBody) > 0 {
		// The API reads every body as JSON whatever its Content-Type (curl
		// -d sends a form's), and the spec says so.
		vreq.Header.Set("Content-Type", "application/json")
	}
	route, params, err := router.FindRoute(vreq)
	if err != nil {
		if !errors.Is(err, routers.ErrPathNotFound) && !errors.Is(err, routers.ErrMethodNotAllowed) {
			return fmt.Errorf("find the route: %w", err)
		}
		if r.Method == http.MethodHead {
			return nil // HEAD of a GET route: no body to check
		}
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("%s %s is not in the spec but answered %d", r.Method, r.URL.Path, status)
		}
		return errorBody(doc, respBody)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		SkipSettingDefaults:   true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
	if reqErr := openapi3filter.ValidateRequest(ctx, in); reqErr != nil && status < 400 {
		return fmt.Errorf("the spec forbids this request, the server took it: %w", reqErr)
	}
	res := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	res.SetBodyBytes(respBody)
	return openapi3filter.ValidateResponse(ctx, res)
}

func errorBody(doc *openapi3.T, body []byte) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("the answer is not JSON: %w", err)
	}
	return doc.Components.Schemas["Error"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
}
