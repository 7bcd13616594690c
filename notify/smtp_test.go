package notify_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline/notify"
)

func TestSMTPSenderDeliversToMailpit(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t)
	s, err := notify.NewSMTPSender(notify.SMTPConfig{
		Host: "127.0.0.1", Port: mp.SMTPPort, Security: notify.SMTPPlain,
		From: "packline <no-reply@packline.example>",
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := notify.Render(sampleRequest("made-to-order", notify.Email, "shipping_notice", notify.ToCustomer))
	if err != nil {
		t.Fatal(err)
	}
	key := notify.Key("eff_0123456789abcdef01234567", "shipping_notice")
	rcpt, err := s.SendEmail(shortCtx(t), key, m)
	if err != nil {
		t.Fatal(err)
	}
	if rcpt.ProviderID != "<"+s.MessageID(key)+">" {
		t.Fatalf("receipt %q, want the Message-ID <%s>", rcpt.ProviderID, s.MessageID(key))
	}

	got := mp.messages(t)
	if len(got) != 1 {
		t.Fatalf("mailpit holds %d messages, want 1", len(got))
	}
	g := got[0]
	if g.MessageID != s.MessageID(key) {
		t.Errorf("Message-ID %q, want %q", g.MessageID, s.MessageID(key))
	}
	if g.Subject != m.Subject {
		t.Errorf("subject %q, want %q", g.Subject, m.Subject)
	}
	if g.From.Address != "no-reply@packline.example" || g.From.Name != "Atelier Papier" {
		t.Errorf("from %+v, want Atelier Papier <no-reply@packline.example>", g.From)
	}
	if len(g.To) != 1 || g.To[0].Address != "amelie@example.com" || g.To[0].Name != "Amélie Poulain" {
		t.Errorf("to %+v", g.To)
	}
	if len(g.ReplyTo) != 1 || g.ReplyTo[0].Address != "shop@example.com" {
		t.Errorf("reply-to %+v", g.ReplyTo)
	}
	// SMTP carries lines ending in CRLF.
	if strings.TrimSpace(strings.ReplaceAll(g.Text, "\r\n", "\n")) != strings.TrimSpace(m.Text) {
		t.Errorf("text part differs:\n got %q\nwant %q", g.Text, m.Text)
	}
	if !strings.Contains(g.HTML, "SB559274429349920213") || !strings.Contains(g.HTML, "Track your parcel") {
		t.Errorf("HTML part lacks the tracking block:\n%s", g.HTML)
	}
	h := mp.headers(t, g.ID)
	if v := h["Auto-Submitted"]; len(v) != 1 || v[0] != "auto-generated" {
		t.Errorf("Auto-Submitted header %v", v)
	}
	if v := h["X-Packline-Template"]; len(v) != 1 || v[0] != "shipping_notice" {
		t.Errorf("X-Packline-Template header %v", v)
	}
}

// TestSMTPSenderStartTLSAndAuth runs the production shape: STARTTLS
// required, then authentication, against a server with its own CA.
func TestSMTPSenderStartTLSAndAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pool := writeTestCert(t, dir)
	sum := sha1.Sum([]byte("s3cret"))
	auth := "mailer:{SHA}" + base64.StdEncoding.EncodeToString(sum[:]) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "auth"), []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	mp := startMailpit(t,
		"--smtp-tls-cert", filepath.Join(dir, "cert.pem"), "--smtp-tls-key", filepath.Join(dir, "key.pem"),
		"--smtp-require-starttls", "--smtp-auth-file", filepath.Join(dir, "auth"))

	cfg := notify.SMTPConfig{
		Host: "127.0.0.1", Port: mp.SMTPPort, Security: notify.SMTPStartTLS,
		Username: "mailer", Password: "s3cret", From: "no-reply@packline.example",
		TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Timeout:   20 * time.Second,
	}
	s, err := notify.NewSMTPSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := notify.Render(sampleRequest("cash-on-delivery", notify.Email, "new_order", notify.ToMerchant))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendEmail(shortCtx(t), "eff_1:new_order", m); err != nil {
		t.Fatal(err)
	}

	cfg.Password = "wrong"
	bad, err := notify.NewSMTPSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.SendEmail(shortCtx(t), "eff_2:new_order", m); err == nil {
		t.Fatal("sent with a wrong password")
	}
	cfg.Password, cfg.TLSConfig = "s3cret", nil // the system roots do not know the test CA
	untrusted, err := notify.NewSMTPSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := untrusted.SendEmail(shortCtx(t), "eff_3:new_order", m); err == nil {
		t.Fatal("sent over TLS to a server whose certificate is not trusted")
	}

	got := mp.messages(t)
	if len(got) != 1 || got[0].Subject != m.Subject || got[0].To[0].Address != "shop@example.com" {
		t.Fatalf("mailpit holds %+v, want only the authenticated message", got)
	}
}

func TestSMTPSenderPermanentRefusal(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t, "--smtp-allowed-recipients", `@example\.com$`)
	s, err := notify.NewSMTPSender(notify.SMTPConfig{Host: "127.0.0.1", Port: mp.SMTPPort,
		Security: notify.SMTPPlain, From: "no-reply@packline.example"})
	if err != nil {
		t.Fatal(err)
	}
	req := sampleRequest("made-to-order", notify.Email, "receipt", notify.ToCustomer)
	req.Order.Customer.Email = "someone@refused.test"
	m, err := notify.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.SendEmail(shortCtx(t), "eff_x:receipt", m)
	if !errors.Is(err, notify.ErrPermanent) {
		t.Fatalf("refused recipient: %v, want ErrPermanent", err)
	}
	// A malformed address never reaches the server.
	m.To = "not an address"
	if _, err := s.SendEmail(shortCtx(t), "eff_y:receipt", m); !errors.Is(err, notify.ErrPermanent) {
		t.Fatalf("malformed address: %v, want ErrPermanent", err)
	}
	// Nothing listening: worth a retry.
	closed, err := notify.NewSMTPSender(notify.SMTPConfig{Host: "127.0.0.1", Port: freePort(t),
		Security: notify.SMTPPlain, From: "no-reply@packline.example", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m.To = "amelie@example.com"
	if _, err := closed.SendEmail(shortCtx(t), "eff_z:receipt", m); err == nil || errors.Is(err, notify.ErrPermanent) {
		t.Fatalf("connection refused: %v, want a retryable error", err)
	}
}

func TestParseSMTPURL(t *testing.T) {
	t.Parallel()
	cfg, err := notify.ParseSMTPURL("smtp://user:p%40ss@mail.example.com:2525?from=Shop%20%3Cno-reply@example.com%3E")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "mail.example.com" || cfg.Port != 2525 || cfg.Username != "user" || cfg.Password != "p@ss" ||
		cfg.Security != notify.SMTPStartTLS || cfg.From != "Shop <no-reply@example.com>" {
		t.Fatalf("cfg = %+v", cfg)
	}
	if cfg, err = notify.ParseSMTPURL("smtps://mail.example.com?from=a@example.com"); err != nil || cfg.Security != notify.SMTPTLS {
		t.Fatalf("smtps: %+v, %v", cfg, err)
	}
	if cfg, err = notify.ParseSMTPURL("smtp://127.0.0.1:1025?security=none&from=a@example.com"); err != nil || cfg.Security != notify.SMTPPlain {
		t.Fatalf("security=none: %+v, %v", cfg, err)
	}
	for _, bad := range []string{"http://x?from=a@example.com", "smtp://?from=a@example.com", "smtp://host", "smtp://host?from=nope",
		"smtp://host?from=a@example.com&security=maybe", "smtp://host:port?from=a@example.com"} {
		if _, err := notify.ParseSMTPURL(bad); err == nil {
			t.Errorf("ParseSMTPURL(%q) succeeded", bad)
		}
	}
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key
// to dir, and returns a pool that trusts it.
func writeTestCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "packline test SMTP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool
}
