package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// TwilioConfig configures the HTTP SMS sender. It speaks Twilio's Messages
// API, which several other providers mirror.
type TwilioConfig struct {
	AccountSID string
	AuthToken  string
	// From is the sending number (E.164) or a Messaging Service SID (MG…).
	From string
	// BaseURL is the API root (default https://api.twilio.com): a mock in
	// tests, or a compatible provider.
	BaseURL string
	// HTTPClient sends the requests (default: a client with a 15 s timeout).
	HTTPClient *http.Client
}

// TwilioSender sends SMS through POST
// {BaseURL}/2010-04-01/Accounts/{AccountSid}/Messages.json with the form
// fields To, From (or MessagingServiceSid) and Body, authenticated with HTTP
// basic auth AccountSid:AuthToken. It is safe for concurrent use.
type TwilioSender struct {
	cfg      TwilioConfig
	endpoint string
}

var _ SMSSender = (*TwilioSender)(nil)

// NewTwilioSender returns an SMS sender.
func NewTwilioSender(cfg TwilioConfig) (*TwilioSender, error) {
	switch {
	case cfg.AccountSID == "":
		return nil, errors.New("sms: no account SID")
	case cfg.AuthToken == "":
		return nil, errors.New("sms: no auth token")
	case cfg.From == "":
		return nil, errors.New("sms: no from number or messaging service")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://api.twilio.com"
	}
	if _, err := url.Parse(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("sms: base URL: %w", err)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	return &TwilioSender{
		cfg:      cfg,
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json",
	}, nil
}

// twilioMessage is the part of Twilio's message resource and error body
// that the sender reads.
type twilioMessage struct {
	SID     string `json:"sid"`
	Status  string `json:"status"`
	Code    int    `json:"code"`    // errors
	Message string `json:"message"` // errors
}

// SendSMS implements SMSSender. The key goes in an Idempotency-Key header,
// for providers that honour one; Twilio itself does not, so the caller's
// messages row is what keeps one message per key. A 4xx answer other than
// 401 and 429 wraps ErrPermanent: the number or the message is refused and a
// retry will not change that (a 401 is bad credentials, which an operator
// can fix while the task retries). Error texts carry the provider's code,
// never the number or the body.
func (s *TwilioSender) SendSMS(ctx context.Context, key string, m Message) (Receipt, error) {
	if m.Channel != "" && m.Channel != SMS {
		return Receipt{}, permanent("sms: message %s is for %s, not sms", m.Template, m.Channel)
	}
	if m.To == "" || m.Text == "" {
		return Receipt{}, permanent("sms: message %s has no recipient or no text", m.Template)
	}
	form := url.Values{}
	form.Set("To", m.To)
	if strings.HasPrefix(s.cfg.From, "MG") {
		form.Set("MessagingServiceSid", s.cfg.From)
	} else {
		form.Set("From", s.cfg.From)
	}
	form.Set("Body", m.Text)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Receipt{}, fmt.Errorf("sms send %s: %w", m.Template, err)
	}
	req.SetBasicAuth(s.cfg.AccountSID, s.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return Receipt{}, fmt.Errorf("sms send %s: %w", m.Template, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Receipt{}, fmt.Errorf("sms send %s: read answer: %w", m.Template, err)
	}
	var body twilioMessage
	_ = json.Unmarshal(raw, &body)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if body.SID == "" {
			return Receipt{}, fmt.Errorf("sms send %s: HTTP %d without a message sid", m.Template, resp.StatusCode)
		}
		return Receipt{ProviderID: body.SID}, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode >= 500:
		return Receipt{}, fmt.Errorf("sms send %s: HTTP %d (provider code %d)", m.Template, resp.StatusCode, body.Code)
	default:
		return Receipt{}, permanent("sms send %s: HTTP %d (provider code %d)", m.Template, resp.StatusCode, body.Code)
	}
}
