package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/packline/packline"
)

// Limits on what an order may hold.
const (
	maxLines        = 500
	maxQuantity     = 1_000_000
	maxShortString  = 200
	maxSKU          = 64
	maxNotes        = 2000
	maxBlob         = 16 << 10 // metadata, customization
	maxMetadataKeys = 50
	maxIdemKey      = 255
)

// createOrderRequest is the body of POST /v1/orders.
type createOrderRequest struct {
	Flow            string          `json:"flow"`
	ExternalID      string          `json:"external_id"`
	Currency        string          `json:"currency"`
	Customer        *customerInput  `json:"customer"`
	ShippingAddress *addressInput   `json:"shipping_address"`
	Lines           []lineInput     `json:"lines"`
	ShipDate        string          `json:"ship_date"`
	Payment         *paymentInput   `json:"payment"`
	Notes           string          `json:"notes"`
	Metadata        json.RawMessage `json:"metadata"`
}

type customerInput struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	Phone string `json:"phone"`
}

type addressInput struct {
	Line1      string `json:"line1"`
	Line2      string `json:"line2"`
	City       string `json:"city"`
	State      string `json:"state"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

type lineInput struct {
	SKU           string          `json:"sku"`
	Name          string          `json:"name"`
	Quantity      *int64          `json:"quantity"`
	UnitPrice     *int64          `json:"unit_price"`
	Customizable  bool            `json:"customizable"`
	Customization json.RawMessage `json:"customization"`
}

type paymentInput struct {
	Method string `json:"method"`
}

var (
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
	countryRE  = regexp.MustCompile(`^[A-Z]{2}$`)
)

// text checks a single-line string: valid UTF-8, no control characters, at
// most max bytes; required ones may not be blank.
func text(field, s string, max int, required bool) error {
	if required && strings.TrimSpace(s) == "" {
		return packline.FieldError(field, "%s is required", field)
	}
	if len(s) > max {
		return packline.FieldError(field, "%s must be at most %d bytes", field, max)
	}
	if !utf8.ValidString(s) {
		return packline.FieldError(field, "%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return packline.FieldError(field, "%s may not contain control characters", field)
		}
	}
	return nil
}

// multiline is text that may hold newlines and tabs, but no other control
// characters (PostgreSQL refuses NUL).
func multiline(field, s string, max int) error {
	if len(s) > max {
		return packline.FieldError(field, "%s must be at most %d bytes", field, max)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return packline.FieldError(field, "%s may not contain control characters", field)
		}
	}
	return nil
}

// toOrder validates the request and returns the order it describes. The
// first problem found, in the order of the fields, is the answer.
func (req *createOrderRequest) toOrder() (packline.Order, error) {
	if err := text("flow", req.Flow, 64, false); err != nil {
		return packline.Order{}, err
	}
	if err := text("external_id", req.ExternalID, 128, false); err != nil {
		return packline.Order{}, err
	}
	if err := checkCurrency(req.Currency); err != nil {
		return packline.Order{}, err
	}
	addr, err := req.ShippingAddress.toAddress()
	if err != nil {
		return packline.Order{}, err
	}
	cust, err := req.Customer.toCustomer(addr)
	if err != nil {
		return packline.Order{}, err
	}
	lines, err := toLines(req.Lines)
	if err != nil {
		return packline.Order{}, err
	}
	if req.ShipDate != "" {
		if _, err := time.Parse(time.DateOnly, req.ShipDate); err != nil {
			return packline.Order{}, packline.FieldError("ship_date", "ship_date must be a date like 2026-03-31")
		}
	}
	method := ""
	if req.Payment != nil {
		if err := text("payment.method", req.Payment.Method, 255, false); err != nil {
			return packline.Order{}, err
		}
		method = req.Payment.Method
	}
	if err := multiline("notes", req.Notes, maxNotes); err != nil {
		return packline.Order{}, err
	}
	meta, err := metadata(req.Metadata)
	if err != nil {
		return packline.Order{}, err
	}
	return packline.Order{Flow: req.Flow, ExternalID: req.ExternalID, Currency: req.Currency,
		Customer: cust, ShippingAddress: addr, Lines: lines, ShipDate: req.ShipDate, PaymentMethod: method,
		Notes: req.Notes, Metadata: meta}, nil
}

// checkCurrency: required, an upper-case ISO 4217 code packline knows.
func checkCurrency(c string) error {
	switch {
	case c == "":
		return packline.FieldError("currency", "currency is required (ISO 4217, e.g. USD)")
	case !currencyRE.MatchString(c):
		return packline.FieldError("currency", "currency must be an upper-case ISO 4217 code such as USD")
	}
	if _, ok := packline.CurrencyExponent(c); !ok {
		return packline.FieldError("currency", "unknown currency %q", c)
	}
	return nil
}

// toAddress validates a shipping address; nil when there is none.
func (a *addressInput) toAddress() (*packline.Address, error) {
	if a == nil {
		return nil, nil
	}
	for _, f := range []struct {
		name, v  string
		required bool
	}{
		{"shipping_address.line1", a.Line1, true}, {"shipping_address.line2", a.Line2, false},
		{"shipping_address.city", a.City, true}, {"shipping_address.state", a.State, false},
		{"shipping_address.postal_code", a.PostalCode, false},
	} {
		if err := text(f.name, f.v, maxShortString, f.required); err != nil {
			return nil, err
		}
	}
	if !countryRE.MatchString(a.Country) {
		return nil, packline.FieldError("shipping_address.country", "country must be an ISO 3166-1 alpha-2 code such as DZ")
	}
	return &packline.Address{Line1: a.Line1, Line2: a.Line2, City: a.City, State: a.State, PostalCode: a.PostalCode, Country: a.Country}, nil
}

// toCustomer validates the customer: a name, and an email or a phone
// (normalized for the shipping country, when there is one).
func (c *customerInput) toCustomer(addr *packline.Address) (packline.Customer, error) {
	if c == nil {
		return packline.Customer{}, packline.FieldError("customer", "customer is required")
	}
	if err := text("customer.name", c.Name, maxShortString, true); err != nil {
		return packline.Customer{}, err
	}
	email := strings.TrimSpace(c.Email)
	if email != "" {
		a, err := mail.ParseAddress(email)
		if err != nil || a.Address != email || len(email) > 254 || !strings.Contains(email[strings.LastIndex(email, "@")+1:], ".") {
			return packline.Customer{}, packline.FieldError("customer.email", "customer.email is not an email address")
		}
	}
	phone := ""
	if c.Phone != "" {
		country := ""
		if addr != nil {
			country = addr.Country
		}
		var err error
		if phone, err = NormalizePhone(c.Phone, country); err != nil {
			return packline.Customer{}, packline.FieldError("customer.phone", "%v", err)
		}
	}
	if email == "" && phone == "" {
		return packline.Customer{}, packline.FieldError("customer", "customer needs an email or a phone to be told about the order")
	}
	return packline.Customer{Name: c.Name, Email: email, Phone: phone}, nil
}

// toLines validates the order's lines: at least one, at most maxLines.
func toLines(in []lineInput) ([]packline.Line, error) {
	if len(in) == 0 {
		return nil, packline.FieldError("lines", "an order needs at least one line")
	}
	if len(in) > maxLines {
		return nil, packline.FieldError("lines", "an order may have at most %d lines", maxLines)
	}
	lines := make([]packline.Line, len(in))
	for i, l := range in {
		var err error
		if lines[i], err = l.toLine(fmt.Sprintf("lines[%d].", i)); err != nil {
			return nil, err
		}
	}
	return lines, nil
}

// toLine validates one line; p prefixes its field names (lines[0].).
func (l lineInput) toLine(p string) (packline.Line, error) {
	if err := checkSKU(p+"sku", l.SKU); err != nil {
		return packline.Line{}, err
	}
	if err := text(p+"name", l.Name, maxShortString, true); err != nil {
		return packline.Line{}, err
	}
	switch {
	case l.Quantity == nil:
		return packline.Line{}, packline.FieldError(p+"quantity", "quantity is required")
	case *l.Quantity <= 0 || *l.Quantity > maxQuantity:
		return packline.Line{}, packline.FieldError(p+"quantity", "quantity must be between 1 and %d", maxQuantity)
	case l.UnitPrice == nil:
		return packline.Line{}, packline.FieldError(p+"unit_price", "unit_price is required (integer minor units)")
	case *l.UnitPrice < 0:
		return packline.Line{}, packline.FieldError(p+"unit_price", "unit_price may not be negative")
	}
	cust, err := blob(p+"customization", l.Customization)
	if err != nil {
		return packline.Line{}, err
	}
	return packline.Line{SKU: l.SKU, Name: l.Name, Quantity: *l.Quantity, UnitPrice: *l.UnitPrice,
		Customizable: l.Customizable, Customization: cust}, nil
}

// metadata validates the order's metadata: a JSON object of at most
// maxMetadataKeys keys (blob's rules for its strings); nil when absent.
func metadata(raw json.RawMessage) (json.RawMessage, error) {
	meta, err := blob("metadata", raw)
	if err != nil || meta == nil {
		return meta, err
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(meta, &m) != nil {
		return nil, packline.FieldError("metadata", "metadata must be a JSON object")
	}
	if len(m) > maxMetadataKeys {
		return nil, packline.FieldError("metadata", "metadata may have at most %d keys", maxMetadataKeys)
	}
	return meta, nil
}

// checkSKU is the one SKU rule, for order lines and stock alike: required
// single-line text of at most maxSKU bytes, without spaces or / ? # %
// (a SKU is a path segment of /v1/stock/{sku}).
func checkSKU(field, sku string) error {
	if err := text(field, sku, maxSKU, true); err != nil {
		return err
	}
	if strings.ContainsFunc(sku, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune("/?#%", r) }) {
		return packline.FieldError(field, "a SKU may not contain spaces or / ? # %%")
	}
	return nil
}

// blob checks a free-form JSON value (metadata, customization): at most
// maxBlob bytes, no control characters in its strings but newlines and
// tabs, none at all in its keys; null counts as absent.
func blob(field string, raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if len(raw) > maxBlob {
		return nil, packline.FieldError(field, "%s must be at most %d bytes of JSON", field, maxBlob)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return nil, packline.FieldError(field, "%s is not valid JSON", field)
	}
	if err := checkStrings(field, v); err != nil {
		return nil, err
	}
	// Compact it so what is stored does not depend on the client's spacing.
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, packline.FieldError(field, "%s is not valid JSON", field)
	}
	return json.RawMessage(buf.Bytes()), nil
}

// checkStrings walks a decoded free-form JSON value and refuses control
// characters (NUL among them: PostgreSQL refuses it, and it ends up on the
// timeline and in webhooks) in its strings, newlines and tabs excepted, and
// any in its keys.
func checkStrings(path string, v any) error {
	switch x := v.(type) {
	case string:
		return multiline(path, x, maxBlob)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if strings.ContainsFunc(k, unicode.IsControl) {
				return packline.FieldError(path, "the keys of %s may not contain control characters", path)
			}
			if err := checkStrings(path+"."+k, x[k]); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := checkStrings(path+"["+strconv.Itoa(i)+"]", e); err != nil {
				return err
			}
		}
	}
	return nil
}
