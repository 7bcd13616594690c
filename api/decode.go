package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"

	"github.com/packline/packline"
)

// MaxBodyBytes is the largest request body accepted (413 beyond).
const MaxBodyBytes = 1 << 20

// decodeJSON reads exactly one JSON object into v, refusing unknown fields,
// trailing data and bodies over the limit, with errors that name the field.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return packline.Errorf(packline.ETOOLARGE, "the request body is over %d bytes", MaxBodyBytes)
		}
		return packline.Errorf(packline.EMALFORMED, "could not read the request body")
	}
	return decodeBytes(body, v)
}

func decodeBytes(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return packline.Errorf(packline.EMALFORMED, "the request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			if path := unknownField(body, reflect.TypeOf(v)); path != "" {
				return &packline.Error{Code: packline.EINVALID, Field: path, Message: fmt.Sprintf("unknown field %q", path)}
			}
		}
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return packline.Errorf(packline.EMALFORMED, "the request body has data after the JSON object")
	}
	return nil
}

// jsonError turns a decoding error into a client error naming the field.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return packline.Errorf(packline.EMALFORMED, "malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return packline.Errorf(packline.EMALFORMED, "malformed JSON: the body ends too early")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return packline.Errorf(packline.EMALFORMED, "the request body must be a JSON object")
		}
		return &packline.Error{Code: packline.EINVALID, Field: field,
			Message: fmt.Sprintf("%s must be %s, not %s", field, jsonKind(typ.Type.Kind().String()), typ.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &packline.Error{Code: packline.EINVALID, Field: name, Message: fmt.Sprintf("unknown field %q", name)}
	}
	var fe *packline.Error
	if errors.As(err, &fe) {
		return fe
	}
	return packline.Errorf(packline.EMALFORMED, "malformed JSON")
}

func jsonKind(k string) string {
	switch k {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return "of another type"
}

// unknownField finds the path (customer.age, lines[2].colour) of the first
// field in body that the Go type t does not have; encoding/json names only
// the last key.
func unknownField(body []byte, t reflect.Type) string {
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return ""
	}
	var walk func(path string, v any, t reflect.Type) string
	walk = func(path string, v any, t reflect.Type) string {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch x := v.(type) {
		case map[string]any:
			if t.Kind() != reflect.Struct {
				return ""
			}
			fields := map[string]reflect.Type{}
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "" {
					name = f.Name
				}
				fields[strings.ToLower(name)] = f.Type
			}
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				p := k
				if path != "" {
					p = path + "." + k
				}
				ft, ok := fields[strings.ToLower(k)]
				if !ok {
					return p
				}
				if found := walk(p, x[k], ft); found != "" {
					return found
				}
			}
		case []any:
			if t.Kind() != reflect.Slice {
				return ""
			}
			for i, e := range x {
				if found := walk(fmt.Sprintf("%s[%d]", path, i), e, t.Elem()); found != "" {
					return found
				}
			}
		}
		return ""
	}
	return walk("", doc, t)
}
