package notify

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTPSecurity is how an SMTP connection is protected.
type SMTPSecurity string

// SMTP security modes.
const (
	// SMTPStartTLS upgrades a plain connection (port 587) with STARTTLS and
	// refuses a server that does not offer it. The default.
	SMTPStartTLS SMTPSecurity = "starttls"
	// SMTPTLS speaks TLS from the first byte (port 465).
	SMTPTLS SMTPSecurity = "tls"
	// SMTPPlain sends in the clear: only for a relay on the same host or a
	// test server such as mailpit.
	SMTPPlain SMTPSecurity = "none"
)

// SMTPConfig configures the SMTP sender.
type SMTPConfig struct {
	Host     string
	Port     int // 587 for starttls, 465 for tls, 25 for none when 0
	Security SMTPSecurity
	// Username and Password authenticate (PLAIN, LOGIN or CRAM-MD5, as the
	// server offers) when Username is set.
	Username string
	Password string
	// From is the sender address, "no-reply@example.com" or
	// "Packline <no-reply@example.com>". A message's FromName replaces the
	// display name, so a customer sees the store's name.
	From string
	// Timeout bounds one send: dial, TLS, authentication and data
	// (default 30 s).
	Timeout time.Duration
	// TLSConfig overrides the TLS settings (a private CA in tests).
	TLSConfig *tls.Config
}

// ParseSMTPURL reads an SMTP configuration from a URL, the form
// PACKLINE_SMTP_URL takes:
//
//	smtp://user:pass@host:587?from=no-reply@example.com   STARTTLS (required)
//	smtps://user:pass@host:465?from=...                   TLS from the start
//	smtp://host:1025?security=none&from=...               in the clear (mailpit)
func ParseSMTPURL(raw string) (SMTPConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return SMTPConfig{}, fmt.Errorf("smtp url: %w", err)
	}
	cfg := SMTPConfig{Host: u.Hostname(), From: u.Query().Get("from")}
	switch u.Scheme {
	case "smtp":
		cfg.Security = SMTPStartTLS
	case "smtps":
		cfg.Security = SMTPTLS
	default:
		return SMTPConfig{}, fmt.Errorf("smtp url: scheme must be smtp or smtps, not %q", u.Scheme)
	}
	if s := u.Query().Get("security"); s != "" {
		cfg.Security = SMTPSecurity(s)
	}
	if p := u.Port(); p != "" {
		if cfg.Port, err = strconv.Atoi(p); err != nil {
			return SMTPConfig{}, fmt.Errorf("smtp url: port %q", p)
		}
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	return cfg, cfg.validate()
}

func (c *SMTPConfig) validate() error {
	switch {
	case c.Host == "":
		return errors.New("smtp: no host")
	case c.From == "":
		return errors.New("smtp: no from address")
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("smtp: from address %q: %w", c.From, err)
	}
	switch c.Security {
	case "", SMTPStartTLS, SMTPTLS, SMTPPlain:
	default:
		return fmt.Errorf("smtp: security must be starttls, tls or none, not %q", c.Security)
	}
	return nil
}

// SMTPSender sends email over SMTP with go-mail, one connection per message.
// It is safe for concurrent use.
type SMTPSender struct {
	client *gomail.Client
	from   *mail.Address
	domain string // of the From address, for Message-IDs
}

var _ EmailSender = (*SMTPSender)(nil)

// NewSMTPSender returns an SMTP sender. It does not connect.
func NewSMTPSender(cfg SMTPConfig) (*SMTPSender, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	from, _ := mail.ParseAddress(cfg.From)
	if cfg.Security == "" {
		cfg.Security = SMTPStartTLS
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	opts := []gomail.Option{gomail.WithTimeout(cfg.Timeout)}
	port := cfg.Port
	switch cfg.Security {
	case SMTPStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
		if port == 0 {
			port = 587
		}
	case SMTPTLS:
		opts = append(opts, gomail.WithSSL())
		if port == 0 {
			port = 465
		}
	case SMTPPlain:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
		if port == 0 {
			port = 25
		}
	}
	opts = append(opts, gomail.WithPort(port))
	tc := cfg.TLSConfig
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tc = tc.Clone()
	if tc.ServerName == "" {
		tc.ServerName = cfg.Host
	}
	opts = append(opts, gomail.WithTLSConfig(tc))
	if cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	c, err := gomail.NewClient(cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	domain := "packline.invalid"
	if _, d, ok := strings.Cut(from.Address, "@"); ok && d != "" {
		domain = d
	}
	return &SMTPSender{client: c, from: from, domain: domain}, nil
}

// MessageID is the Message-ID header value (without angle brackets) that a
// message with this key carries: the same key, the same id, so a receiving
// system that de-duplicates on Message-ID shows a resent message once.
func (s *SMTPSender) MessageID(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:16]) + "@" + s.domain
}

// SendEmail implements EmailSender. Errors wrap ErrPermanent when the server
// refused the message for good (a 5xx reply: unknown mailbox, bad
// credentials, rejected content); a connection failure or a 4xx reply is
// worth a retry.
func (s *SMTPSender) SendEmail(ctx context.Context, key string, m Message) (Receipt, error) {
	if m.Channel != "" && m.Channel != Email {
		return Receipt{}, permanent("smtp: message %s is for %s, not email", m.Template, m.Channel)
	}
	msg := gomail.NewMsg()
	from := *s.from
	if m.FromName != "" {
		from.Name = m.FromName
	}
	msg.FromMailAddress(&from)
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return Receipt{}, permanent("smtp: recipient address of %s: %v", m.Template, err)
	}
	if m.ToName != "" {
		to.Name = m.ToName
	}
	msg.ToMailAddress(to)
	if m.ReplyTo != "" {
		if err := msg.ReplyTo(m.ReplyTo); err != nil {
			return Receipt{}, permanent("smtp: reply-to of %s: %v", m.Template, err)
		}
	}
	msg.Subject(m.Subject)
	id := s.MessageID(key)
	msg.SetMessageIDWithValue(id)
	msg.SetDate()
	// RFC 3834: an automatic message; out-of-office robots do not answer it.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader("X-Packline-Template", m.Template)
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	if err := s.client.DialAndSendWithContext(ctx, msg); err != nil {
		return Receipt{}, classifySMTP(m.Template, err)
	}
	return Receipt{ProviderID: "<" + id + ">"}, nil
}

func classifySMTP(template string, err error) error {
	var se *gomail.SendError
	if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 {
		return fmt.Errorf("%w: smtp send %s: %v", ErrPermanent, template, err)
	}
	return fmt.Errorf("smtp send %s: %w", template, err)
}
