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
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

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
	if err := checkEncoding(body); err != nil {
		return err
	}
	// The body read once as plain JSON, to name fields exactly (encoding/json
	// matches them case-insensitively) and to give paths with indexes.
	var doc any
	pre := json.NewDecoder(bytes.NewReader(body))
	pre.UseNumber()
	parsed := pre.Decode(&doc) == nil
	if parsed {
		if path, want := unknownField(doc, reflect.TypeOf(v)); path != "" {
			msg := fmt.Sprintf("unknown field %q", path)
			if want != "" {
				msg += fmt.Sprintf(" (field names are case-sensitive: %s)", want)
			}
			return &packline.Error{Code: packline.EINVALID, Field: path, Message: msg}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var typ *json.UnmarshalTypeError
		if parsed && errors.As(err, &typ) && typ.Field != "" {
			if path := mistyped(doc, reflect.TypeOf(v)); path != "" {
				return &packline.Error{Code: packline.EINVALID, Field: path,
					Message: fmt.Sprintf("%s must be %s, not %s", path, jsonKind(typ.Type.Kind().String()), typ.Value)}
			}
		}
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return packline.Errorf(packline.EMALFORMED, "the request body has data after the JSON object")
	}
	return nil
}

// checkEncoding refuses a body that is not valid UTF-8, or that escapes a
// lone UTF-16 surrogate (\ud800): encoding/json would store either as
// U+FFFD, so what the client sent would not be what is kept.
func checkEncoding(body []byte) error {
	if !utf8.Valid(body) {
		return packline.Errorf(packline.EMALFORMED, "the request body is not valid UTF-8")
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' || i+1 >= len(body) {
			continue
		}
		i++ // the escaped character; \\ is skipped whole
		if body[i] != 'u' {
			continue
		}
		r, ok := hex4(body[i+1:])
		if !ok {
			continue // a syntax error the decoder reports
		}
		switch {
		case utf16.IsSurrogate(r) && r < 0xdc00:
			low, ok := rune(0), len(body) > i+6 && body[i+5] == '\\' && body[i+6] == 'u'
			if ok {
				low, ok = hex4(body[i+7:])
			}
			if !ok || low < 0xdc00 || low > 0xdfff {
				return packline.Errorf(packline.EMALFORMED, "the request body escapes a lone UTF-16 surrogate (\\u%04x)", r)
			}
			i += 10
		case utf16.IsSurrogate(r):
			return packline.Errorf(packline.EMALFORMED, "the request body escapes a lone UTF-16 surrogate (\\u%04x)", r)
		default:
			i += 4
		}
	}
	return nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 16)
	return rune(n), err == nil
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

// jsonFields maps the JSON names of struct type t's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// walkDoc visits every value of doc (decoded with UseNumber) alongside the
// Go type it decodes into, depth first, keys in sorted order, with its path
// (customer.age, lines[2].colour); visit returns a non-empty path to stop.
// Keys the type lacks are visited with a nil type, and parent the struct
// type that lacks them; free-form values (any, json.RawMessage, maps) are
// not entered.
func walkDoc(doc any, t reflect.Type, visit func(path string, v any, t, parent reflect.Type) string) string {
	var walk func(path string, v any, t, parent reflect.Type) string
	walk = func(path string, v any, t, parent reflect.Type) string {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if found := visit(path, v, t, parent); found != "" || t == nil {
			return found
		}
		switch x := v.(type) {
		case map[string]any:
			if t.Kind() != reflect.Struct {
				return ""
			}
			fields := jsonFields(t)
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
				if found := walk(p, x[k], fields[k], t); found != "" {
					return found
				}
			}
		case []any:
			if t.Kind() != reflect.Slice || t == rawMessageType {
				return ""
			}
			for i, e := range x {
				if found := walk(fmt.Sprintf("%s[%d]", path, i), e, t.Elem(), t); found != "" {
					return found
				}
			}
		}
		return ""
	}
	return walk("", doc, t, nil)
}

var rawMessageType = reflect.TypeOf(json.RawMessage(nil))

// unknownField finds the path of the first key in doc that the Go type t
// does not have, matched exactly ({"CURRENCY": ...} is not currency), and,
// when only its case is wrong, the name it should have.
func unknownField(doc any, t reflect.Type) (path, want string) {
	path = walkDoc(doc, t, func(path string, _ any, t, parent reflect.Type) string {
		if t != nil {
			return ""
		}
		key := path[strings.LastIndex(path, ".")+1:]
		for name := range jsonFields(parent) {
			if strings.EqualFold(name, key) {
				want = name
			}
		}
		return path
	})
	return path, want
}

// mistyped finds the path of the first value in doc that cannot decode into
// its Go type: a string for a number, a fraction or an out-of-range number
// for an integer, an object for a list. encoding/json names the field
// without its indexes (lines.quantity); this names lines[0].quantity.
func mistyped(doc any, t reflect.Type) string {
	return walkDoc(doc, t, func(path string, v any, t, _ reflect.Type) string {
		if t == nil || v == nil || path == "" {
			return ""
		}
		if fits(v, t) {
			return ""
		}
		return path
	})
}

// fits reports whether the JSON value v decodes into Go type t.
func fits(v any, t reflect.Type) bool {
	if t.Kind() == reflect.Interface || t == rawMessageType {
		return true
	}
	switch x := v.(type) {
	case string:
		return t.Kind() == reflect.String
	case bool:
		return t.Kind() == reflect.Bool
	case json.Number:
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			_, err := strconv.ParseInt(string(x), 10, t.Bits())
			return err == nil
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			_, err := strconv.ParseUint(string(x), 10, t.Bits())
			return err == nil
		case reflect.Float32, reflect.Float64:
			_, err := strconv.ParseFloat(string(x), t.Bits())
			return err == nil
		}
		return false
	case map[string]any:
		return t.Kind() == reflect.Struct || t.Kind() == reflect.Map
	case []any:
		return t.Kind() == reflect.Slice || t.Kind() == reflect.Array
	}
	return true
}
