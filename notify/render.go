package notify

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	htemplate "html/template"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	ttemplate "text/template"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/flows"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// partialsFile holds the blocks every message may use (item tables, the
// tracking block, the HTML layout). Its name is not a template name.
const partialsFile = "_partials.tmpl"

// A message file's parts.
const (
	partSubject = "subject"
	partText    = "text"
	partHTML    = "html"
	partSMS     = "sms"
	layoutHTML  = "layout_html"
)

// templates is the parsed set: each message file parsed twice, with
// text/template for the subject, text and SMS parts (no HTML escaping in
// plain text) and with html/template for the HTML part (contextual escaping
// of everything the order carries).
type templates struct {
	text map[string]*ttemplate.Template
	html map[string]*htemplate.Template
}

var loadTemplates = sync.OnceValues(func() (*templates, error) {
	sub, err := fs.Sub(templateFS, "templates")
	if err != nil {
		return nil, err
	}
	return parseTemplates(sub)
})

var funcs = map[string]any{
	// link makes the argument of the "button_html" block.
	"link": func(url, label string) linkView { return linkView{URL: url, Label: label} },
}

type linkView struct{ URL, Label string }

func parseTemplates(fsys fs.FS) (*templates, error) {
	partials, err := fs.ReadFile(fsys, partialsFile)
	if err != nil {
		return nil, fmt.Errorf("notify templates: %w", err)
	}
	files, err := fs.Glob(fsys, "*.tmpl")
	if err != nil {
		return nil, err
	}
	ts := &templates{text: map[string]*ttemplate.Template{}, html: map[string]*htemplate.Template{}}
	for _, file := range files {
		if file == partialsFile {
			continue
		}
		name := strings.TrimSuffix(path.Base(file), ".tmpl")
		src, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, err
		}
		tt, err := ttemplate.New(name).Funcs(funcs).Option("missingkey=error").Parse(string(partials))
		if err == nil {
			_, err = tt.Parse(string(src))
		}
		if err != nil {
			return nil, fmt.Errorf("notify template %s: %w", file, err)
		}
		ht, err := htemplate.New(name).Funcs(funcs).Option("missingkey=error").Parse(string(partials))
		if err == nil {
			_, err = ht.Parse(string(src))
		}
		if err != nil {
			return nil, fmt.Errorf("notify template %s: %w", file, err)
		}
		email := 0
		for _, p := range []string{partSubject, partText, partHTML} {
			if tt.Lookup(p) != nil {
				email++
			}
		}
		if email != 0 && email != 3 {
			return nil, fmt.Errorf("notify template %s: an email needs all of subject, text and html", file)
		}
		if email == 0 && tt.Lookup(partSMS) == nil {
			return nil, fmt.Errorf("notify template %s: defines no email parts and no sms", file)
		}
		ts.text[name], ts.html[name] = tt, ht
	}
	return ts, nil
}

func (ts *templates) has(ch Channel, name string) bool {
	t := ts.text[name]
	if t == nil {
		return false
	}
	switch ch {
	case Email:
		return t.Lookup(partSubject) != nil
	case SMS:
		return t.Lookup(partSMS) != nil
	}
	return false
}

// Templates lists the templates that exist for a channel, sorted.
func Templates(ch Channel) []string {
	ts, err := loadTemplates()
	if err != nil {
		return nil
	}
	var out []string
	for name := range ts.text {
		if ts.has(ch, name) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Check reports every notify:* effect of every flow in reg whose template
// does not exist for its channel. Run it at start-up, after loading custom
// flows, so a flow can never name a missing message.
func Check(reg *flows.Registry) error {
	ts, err := loadTemplates()
	if err != nil {
		return err
	}
	var errs []error
	check := func(flow, where string, specs []flows.EffectSpec) {
		for _, s := range specs {
			ch, ok := ChannelOf(s.Type)
			if !ok {
				continue
			}
			if !ts.has(ch, s.Template) {
				errs = append(errs, fmt.Errorf("flow %s, %s: %w: %s has no %s template", flow, where, ErrUnknownTemplate, s.Template, ch))
			}
		}
	}
	for _, name := range reg.Names() {
		f := reg.Get(name)
		check(name, "on_create", f.OnCreate)
		for _, e := range f.Events {
			for _, t := range e.Transitions {
				check(name, "event "+e.Name, t.Effects)
			}
		}
		for _, t := range f.Automatic {
			check(name, "automatic transition to "+t.To, t.Effects)
		}
	}
	return errors.Join(errs...)
}

// Render turns a request into a message: the recipient's address, and the
// subject, text and HTML of an email or the text of an SMS.
func Render(req Request) (Message, error) {
	ts, err := loadTemplates()
	if err != nil {
		return Message{}, err
	}
	if !ts.has(req.Channel, req.Template) {
		return Message{}, fmt.Errorf("%w: %s has no %s template", ErrUnknownTemplate, req.Template, req.Channel)
	}
	m := Message{Channel: req.Channel, Template: req.Template}
	if err := address(&m, req); err != nil {
		return Message{}, err
	}
	v := newView(req)
	tt, ht := ts.text[req.Template], ts.html[req.Template]
	exec := func(part string) (string, error) {
		var b bytes.Buffer
		if err := tt.ExecuteTemplate(&b, part, v); err != nil {
			return "", fmt.Errorf("render %s %s: %w", req.Template, part, err)
		}
		return b.String(), nil
	}
	switch req.Channel {
	case SMS:
		s, err := exec(partSMS)
		if err != nil {
			return Message{}, err
		}
		m.Text = oneLine(s)
	case Email:
		s, err := exec(partSubject)
		if err != nil {
			return Message{}, err
		}
		m.Subject = oneLine(s)
		v.Subject = m.Subject
		if s, err = exec(partText); err != nil {
			return Message{}, err
		}
		m.Text = tidyText(s)
		var b bytes.Buffer
		if err := ht.ExecuteTemplate(&b, layoutHTML, v); err != nil {
			return Message{}, fmt.Errorf("render %s html: %w", req.Template, err)
		}
		m.HTML = b.String()
	}
	return m, nil
}

// address fills the recipient and sender names of m.
func address(m *Message, req Request) error {
	to := req.To
	if to == "" {
		to = ToCustomer
	}
	switch {
	case to == ToCustomer && req.Channel == Email:
		m.To, m.ToName, m.ReplyTo = req.Order.Customer.Email, req.Order.Customer.Name, req.Store.Email
	case to == ToCustomer && req.Channel == SMS:
		m.To, m.ToName = req.Order.Customer.Phone, req.Order.Customer.Name
	case to == ToMerchant && req.Channel == Email:
		m.To, m.ToName = req.Store.Email, req.Store.Name
	case to == ToMerchant && req.Channel == SMS:
		m.To, m.ToName = req.Store.Phone, req.Store.Name
	default:
		return fmt.Errorf("notify %s: unknown recipient %q or channel %q", req.Template, to, req.Channel)
	}
	if strings.TrimSpace(m.To) == "" {
		return fmt.Errorf("%w: the %s has no %s address for %s", ErrNoRecipient, to, req.Channel, req.Template)
	}
	m.FromName = req.Store.Name
	return nil
}

var (
	spaces     = regexp.MustCompile(`\s+`)
	blankLines = regexp.MustCompile(`\n{3,}`)
	lineEnds   = regexp.MustCompile(`[ \t]+\n`)
)

func oneLine(s string) string { return strings.TrimSpace(spaces.ReplaceAllString(s, " ")) }

// tidyText trims trailing spaces and runs of blank lines that the template
// blocks leave behind.
func tidyText(s string) string {
	s = lineEnds.ReplaceAllString(s, "\n")
	s = blankLines.ReplaceAllString(s, "\n\n")
	return strings.TrimSpace(s) + "\n"
}

// view is what the templates see: everything preformatted, so a template
// only places values.
type view struct {
	Subject   string
	Store     Store
	Recipient string
	Customer  packline.Customer
	Order     orderView
	Address   []string
	Shipment  *Shipment
	Links     Links
	Event     eventView
	Deadline  string
}

type orderView struct {
	ID         string
	Reference  string
	Status     string
	StatusText string
	Currency   string
	Items      []itemView
	Subtotal   string
	Total      string
	Paid       string
	Due        string
	// HasPaid is set once anything was paid, to show paid and due lines;
	// HasDue while anything is left to pay.
	HasPaid  bool
	HasDue   bool
	ShipDate string
	Placed   string
	Notes    string
}

type itemView struct {
	SKU           string
	Name          string
	Quantity      int64
	UnitPrice     string
	Total         string
	Customization string
}

type eventView struct {
	Name    string
	Reason  string
	Comment string
	Short   []shortLine
}

type shortLine struct {
	SKU       string
	Needed    string
	Available string
}

func newView(req Request) *view {
	loc := req.Location
	if loc == nil {
		loc = time.UTC
	}
	o := req.Order
	cur := o.Currency
	v := &view{
		Store:     req.Store,
		Recipient: req.To,
		Customer:  o.Customer,
		Shipment:  req.Shipment,
		Links:     req.Links,
	}
	if v.Recipient == "" {
		v.Recipient = ToCustomer
	}
	if v.Store.Name == "" {
		v.Store.Name = "packline"
	}
	subtotal, total := o.Subtotal, o.Total
	var sum int64
	for _, l := range o.Lines {
		sum += l.Total()
		v.Order.Items = append(v.Order.Items, itemView{
			SKU: l.SKU, Name: l.Name, Quantity: l.Quantity,
			UnitPrice:     FormatMoney(l.UnitPrice, cur),
			Total:         FormatMoney(l.Total(), cur),
			Customization: customization(l.Customization),
		})
	}
	if subtotal == 0 {
		subtotal = sum
	}
	if total == 0 {
		total = subtotal
	}
	v.Order.ID = o.ID
	v.Order.Reference = o.ExternalID
	if v.Order.Reference == "" {
		v.Order.Reference = o.ID
	}
	v.Order.Status = o.Status
	v.Order.StatusText = strings.ReplaceAll(o.Status, "_", " ")
	v.Order.Currency = cur
	v.Order.Subtotal = FormatMoney(subtotal, cur)
	v.Order.Total = FormatMoney(total, cur)
	v.Order.Paid = FormatMoney(o.AmountPaid, cur)
	due := total - o.AmountPaid
	if due < 0 {
		due = 0
	}
	v.Order.Due = FormatMoney(due, cur)
	v.Order.HasPaid = o.AmountPaid > 0
	v.Order.HasDue = due > 0
	if d, err := time.Parse(time.DateOnly, o.ShipDate); err == nil {
		v.Order.ShipDate = d.Format(dateLayout)
	}
	if !o.CreatedAt.IsZero() {
		v.Order.Placed = o.CreatedAt.In(loc).Format(dateLayout)
	}
	v.Order.Notes = o.Notes
	if a := o.ShippingAddress; a != nil {
		for _, l := range []string{a.Line1, a.Line2, strings.Join(nonEmpty(a.PostalCode, a.City, a.State), " "), a.Country} {
			if l = strings.TrimSpace(l); l != "" {
				v.Address = append(v.Address, l)
			}
		}
	}
	if !req.Deadline.IsZero() {
		v.Deadline = req.Deadline.In(loc).Format(dateLayout)
	}
	v.Event = newEventView(req.Event, req.Data)
	return v
}

const dateLayout = "2 January 2006"

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// customization shows a line's customization: a JSON string as itself, any
// other JSON compactly.
func customization(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return ""
	}
	return b.String()
}

// newEventView reads what messages show from an event's data. The data is
// the event's, as sent by a merchant, a provider or a worker, so every field
// is optional and read leniently: reason (or error_code, as the payment
// workers report it, decline_code, code, message),
// comment (or note), and the short lines of stock_short as short, skus or
// short_skus (a list of SKUs, or of {sku, needed, available} as
// stock:decrement reports them; wanted, requested, quantity and on_hand are
// read too).
func newEventView(event string, data json.RawMessage) eventView {
	ev := eventView{Name: event}
	var m map[string]any
	if len(data) == 0 || json.Unmarshal(data, &m) != nil {
		return ev
	}
	ev.Reason = reasonText(firstString(m, "reason", "error_code", "decline_code", "code", "message"))
	ev.Comment = firstString(m, "comment", "note")
	for _, key := range []string{"short", "skus", "short_skus", "lines"} {
		list, ok := m[key].([]any)
		if !ok {
			continue
		}
		for _, item := range list {
			switch it := item.(type) {
			case string:
				ev.Short = append(ev.Short, shortLine{SKU: it})
			case map[string]any:
				sku := firstString(it, "sku")
				if sku == "" {
					continue
				}
				ev.Short = append(ev.Short, shortLine{SKU: sku,
					Needed:    firstString(it, "needed", "wanted", "requested", "quantity"),
					Available: firstString(it, "available", "on_hand")})
			}
		}
		break
	}
	return ev
}

// declineReasons words the payment providers' common decline codes (Stripe's
// names) for a customer.
var declineReasons = map[string]string{
	"card_declined":           "the card was declined",
	"insufficient_funds":      "insufficient funds",
	"expired_card":            "the card has expired",
	"incorrect_cvc":           "the security code is incorrect",
	"incorrect_number":        "the card number is incorrect",
	"processing_error":        "a processing error",
	"authentication_required": "the bank asks you to confirm the payment",
}

// reasonText is a decline code in words; an unknown code with its
// underscores as spaces.
func reasonText(code string) string {
	if r, ok := declineReasons[code]; ok {
		return r
	}
	return strings.ReplaceAll(code, "_", " ")
}

func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		switch v := m[k].(type) {
		case string:
			if v != "" {
				return v
			}
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		case json.Number:
			return v.String()
		}
	}
	return ""
}
