package sandbox_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/packline/packline"
	"github.com/packline/packline/couriers"
	"github.com/packline/packline/couriers/sandbox"
)

const secret = "sandbox-test-secret"

func newCourier(t *testing.T) *sandbox.Courier {
	t.Helper()
	c, err := sandbox.New(sandbox.Options{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func labelRequest(key string) couriers.LabelRequest {
	return couriers.LabelRequest{
		Key:         key,
		Reference:   "#1042",
		WeightGrams: 850,
		From: couriers.Party{Name: "Atelier Papier", Address: packline.Address{
			Line1: "12 rue des Lilas", City: "Lyon", PostalCode: "69003", Country: "FR"}},
		To: couriers.Party{Name: "Amélie Poulain (Café des 2 Moulins)", Phone: "+33612345678", Address: packline.Address{
			Line1: "15 rue Lepic", Line2: "3e étage, porte gauche", City: "Paris", PostalCode: "75018", Country: "FR"}},
	}
}

func TestCreateLabelIsIdempotent(t *testing.T) {
	t.Parallel()
	c := newCourier(t)
	ctx := t.Context()
	a, err := c.CreateLabel(ctx, labelRequest("ord_1"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.CreateLabel(ctx, labelRequest("ord_1"))
	if err != nil {
		t.Fatal(err)
	}
	if a.TrackingNumber != b.TrackingNumber || !bytes.Equal(a.PDF, b.PDF) || a.TrackingURL != b.TrackingURL {
		t.Fatal("the same key gave two different labels")
	}
	// Another process, or another secret, issues the same number too.
	other, err := sandbox.New(sandbox.Options{Secret: "another"})
	if err != nil {
		t.Fatal(err)
	}
	if o, err := other.CreateLabel(ctx, labelRequest("ord_1")); err != nil || o.TrackingNumber != a.TrackingNumber ||
		sandbox.TrackingNumber("ord_1") != a.TrackingNumber {
		t.Fatalf("another courier value issued %q (%v), want %q", o.TrackingNumber, err, a.TrackingNumber)
	}
	if !regexp.MustCompile(`^SB[0-9]{18}$`).MatchString(a.TrackingNumber) {
		t.Fatalf("tracking number %q is not SB and 18 digits", a.TrackingNumber)
	}
	if a.Courier != sandbox.Name || !strings.HasSuffix(a.TrackingURL, "/"+a.TrackingNumber) {
		t.Fatalf("label = %+v", a)
	}
	c2, err := c.CreateLabel(ctx, labelRequest("ord_2"))
	if err != nil {
		t.Fatal(err)
	}
	if c2.TrackingNumber == a.TrackingNumber {
		t.Fatal("two keys gave one tracking number")
	}
}

func TestCreateLabelRefusesIncompleteRequest(t *testing.T) {
	t.Parallel()
	c := newCourier(t)
	for _, mutate := range []func(*couriers.LabelRequest){
		func(r *couriers.LabelRequest) { r.Key = "" },
		func(r *couriers.LabelRequest) { r.To.Name = "" },
		func(r *couriers.LabelRequest) { r.To.Address.Line1 = "" },
		func(r *couriers.LabelRequest) { r.To.Address.City = "" },
		func(r *couriers.LabelRequest) { r.To.Address.Country = "" },
		func(r *couriers.LabelRequest) { r.From.Name = "" },
		func(r *couriers.LabelRequest) { r.WeightGrams = -1 },
	} {
		req := labelRequest("ord_1")
		mutate(&req)
		if _, err := c.CreateLabel(t.Context(), req); !errors.Is(err, couriers.ErrInvalidRequest) {
			t.Errorf("CreateLabel(%+v) = %v, want ErrInvalidRequest", req, err)
		}
	}
}

// TestLabelIsA4x6PDF checks the label's structure, page size, text and
// barcode from the bytes alone, then, where poppler and zbar are installed,
// with them too.
func TestLabelIsA4x6PDF(t *testing.T) {
	t.Parallel()
	c := newCourier(t)
	l, err := c.CreateLabel(t.Context(), labelRequest("ord_label"))
	if err != nil {
		t.Fatal(err)
	}
	pdf := l.PDF
	if !bytes.HasPrefix(pdf, []byte("%PDF-1.")) || !bytes.HasSuffix(bytes.TrimSpace(pdf), []byte("%%EOF")) {
		t.Fatal("not a PDF file: bad header or trailer")
	}
	checkXref(t, pdf)
	if !regexp.MustCompile(`/MediaBox \[0 0 288 432\]`).Match(pdf) {
		t.Fatal("page is not 4×6 inches (/MediaBox [0 0 288 432])")
	}
	if n := bytes.Count(pdf, []byte("/Type /Page ")); n != 1 {
		t.Fatalf("%d pages, want 1", n)
	}
	content := contentStream(t, pdf)
	for _, want := range []string{"(" + l.TrackingNumber + ") Tj", "(#1042) Tj", "(15 rue Lepic) Tj", "(Atelier Papier) Tj", "(Paris 75018) Tj"} {
		if !strings.Contains(content, want) {
			t.Errorf("label content lacks %s", want)
		}
	}
	// Latin-1 characters are printed, in the fonts' Windows-1252 encoding.
	if !strings.Contains(content, `Am\351lie`) {
		t.Error("label content lacks the recipient's name in Windows-1252")
	}
	if got := decodeCode128(t, content); got != l.TrackingNumber {
		t.Fatalf("barcode decodes to %q, want %q", got, l.TrackingNumber)
	}

	// The real tools, when this machine has them (Debian: poppler-utils,
	// zbar-tools).
	dir := t.TempDir()
	file := filepath.Join(dir, "label.pdf")
	if err := os.WriteFile(file, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("pdfinfo"); err == nil {
		out, err := exec.Command("pdfinfo", file).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "288 x 432 pts") {
			t.Fatalf("pdfinfo: %v\n%s", err, out)
		}
		out, err = exec.Command("pdftotext", file, "-").CombinedOutput()
		if err != nil || !strings.Contains(string(out), l.TrackingNumber) || !strings.Contains(string(out), "Amélie Poulain") {
			t.Fatalf("pdftotext: %v\n%s", err, out)
		}
		if _, err := exec.LookPath("zbarimg"); err == nil {
			if out, err := exec.Command("pdftoppm", "-r", "200", "-png", "-singlefile", file, filepath.Join(dir, "label")).CombinedOutput(); err != nil {
				t.Fatalf("pdftoppm: %v\n%s", err, out)
			}
			out, err := exec.Command("zbarimg", "-q", "--raw", filepath.Join(dir, "label.png")).Output()
			if err != nil || strings.TrimSpace(string(out)) != l.TrackingNumber {
				t.Fatalf("zbarimg read %q (%v), want %q", out, err, l.TrackingNumber)
			}
		} else {
			t.Log("zbarimg not installed: barcode checked by the Go decoder only")
		}
	} else {
		t.Log("poppler-utils not installed: PDF checked by the Go parser only")
	}
}

func TestLabelSurvivesAwkwardText(t *testing.T) {
	t.Parallel()
	c := newCourier(t)
	req := labelRequest("ord_awkward")
	req.To.Name = `Ahmed (بن علي) \ "the" ) ( ` + strings.Repeat("very long name ", 10)
	req.To.Address.Line1 = strings.Repeat("Cité 500 logements bâtiment 12 ", 6)
	req.To.Address.Line2 = "line\nwith\tcontrol\x00chars"
	l, err := c.CreateLabel(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	checkXref(t, l.PDF)
	content := contentStream(t, l.PDF)
	// Every string is balanced: a stray parenthesis would end it early.
	for _, line := range strings.Split(content, "\n") {
		if !strings.HasSuffix(line, ") Tj ET") {
			continue
		}
		s := line[strings.Index(line, "(")+1 : len(line)-len(") Tj ET")]
		s = strings.NewReplacer(`\\`, "", `\(`, "", `\)`, "").Replace(s)
		if strings.ContainsAny(s, "()") {
			t.Fatalf("unescaped parenthesis in %q", line)
		}
		for _, r := range s {
			if r < 0x20 || r > 0x7e {
				t.Fatalf("raw byte %q in content line %q", r, line)
			}
		}
	}
	if !strings.Contains(content, "(Ahmed \\(?") {
		t.Fatalf("Arabic is not replaced by ?: %s", content)
	}
}

func TestParseCallback(t *testing.T) {
	t.Parallel()
	c := newCourier(t)
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	occurred := now.Add(-time.Minute)
	req, err := sandbox.NewCallbackRequest(t.Context(), "http://127.0.0.1/v1/couriers/sandbox/callbacks",
		secret, "SB000000000000000042", couriers.StatusOutForDelivery, occurred, now)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(req.Body)
	u, err := c.ParseCallback(req.Header, body, now)
	if err != nil {
		t.Fatal(err)
	}
	want := couriers.Update{Courier: "sandbox", TrackingNumber: "SB000000000000000042", Status: couriers.StatusOutForDelivery,
		CourierStatus: "out_for_delivery", OccurredAt: occurred}
	if u != want {
		t.Fatalf("update = %+v, want %+v", u, want)
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("request %s %v", req.Method, req.Header)
	}

	signed := func(body string, at time.Time) http.Header {
		h := http.Header{}
		h.Set(couriers.SignatureHeader, sandbox.Sign(secret, []byte(body), at))
		return h
	}
	good := string(sandbox.CallbackBody("SB1", couriers.StatusDelivered, occurred))
	tests := []struct {
		name   string
		header http.Header
		body   string
		want   error
	}{
		{"bad signature", func() http.Header {
			h := http.Header{}
			h.Set(couriers.SignatureHeader, sandbox.Sign("wrong", []byte(good), now))
			return h
		}(), good, couriers.ErrBadSignature},
		{"no signature", http.Header{}, good, couriers.ErrBadSignature},
		{"stale", signed(good, now.Add(-6*time.Minute)), good, couriers.ErrStaleSignature},
		{"not JSON", signed("{", now), "{", couriers.ErrMalformed},
		{"no tracking number", signed(`{"status":"delivered","occurred_at":"2026-05-04T11:00:00Z"}`, now),
			`{"status":"delivered","occurred_at":"2026-05-04T11:00:00Z"}`, couriers.ErrMalformed},
		{"unknown status", signed(`{"tracking_number":"SB1","status":"lost_in_space","occurred_at":"2026-05-04T11:00:00Z"}`, now),
			`{"tracking_number":"SB1","status":"lost_in_space","occurred_at":"2026-05-04T11:00:00Z"}`, couriers.ErrMalformed},
		{"field name in another case", signed(`{"tracking_number":"SB1","STATUS":"delivered","occurred_at":"2026-05-04T11:00:00Z"}`, now),
			`{"tracking_number":"SB1","STATUS":"delivered","occurred_at":"2026-05-04T11:00:00Z"}`, couriers.ErrMalformed},
		{"unknown field", signed(`{"tracking_number":"SB1","status":"delivered","occurred_at":"2026-05-04T11:00:00Z","x":1}`, now),
			`{"tracking_number":"SB1","status":"delivered","occurred_at":"2026-05-04T11:00:00Z","x":1}`, couriers.ErrMalformed},
		{"bad time", signed(`{"tracking_number":"SB1","status":"delivered","occurred_at":"yesterday"}`, now),
			`{"tracking_number":"SB1","status":"delivered","occurred_at":"yesterday"}`, couriers.ErrMalformed},
	}
	for _, tt := range tests {
		if _, err := c.ParseCallback(tt.header, []byte(tt.body), now); !errors.Is(err, tt.want) {
			t.Errorf("%s: ParseCallback = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := c.Track(t.Context(), "SB1"); !errors.Is(err, couriers.ErrUnsupported) {
		t.Fatalf("Track = %v, want ErrUnsupported", err)
	}
}

func TestNewRequiresSecret(t *testing.T) {
	t.Parallel()
	if _, err := sandbox.New(sandbox.Options{}); err == nil {
		t.Fatal("New without a secret succeeded")
	}
	c := newCourier(t)
	r := couriers.NewRegistry(c)
	got, err := r.Get("sandbox")
	if err != nil || got != couriers.Courier(c) {
		t.Fatalf("registry Get = %v, %v", got, err)
	}
}

// checkXref checks that every cross-reference entry points at its object and
// that startxref points at the table.
func checkXref(t *testing.T, pdf []byte) {
	t.Helper()
	m := regexp.MustCompile(`startxref\n(\d+)\n%%EOF\n$`).FindSubmatch(pdf)
	if m == nil {
		t.Fatal("no startxref")
	}
	xref, _ := strconv.Atoi(string(m[1]))
	if !bytes.HasPrefix(pdf[xref:], []byte("xref\n0 ")) {
		t.Fatalf("startxref %d does not point at the xref table", xref)
	}
	entries := regexp.MustCompile(`(\d{10}) 00000 n\r\n`).FindAllSubmatch(pdf[xref:], -1)
	if len(entries) == 0 {
		t.Fatal("empty xref table")
	}
	for i, e := range entries {
		off, _ := strconv.Atoi(string(e[1]))
		if !bytes.HasPrefix(pdf[off:], []byte(strconv.Itoa(i+1)+" 0 obj\n")) {
			t.Fatalf("xref entry %d (offset %d) does not point at object %d", i+1, off, i+1)
		}
	}
}

// contentStream returns the page's content stream (uncompressed).
func contentStream(t *testing.T, pdf []byte) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<< /Length (\d+) >>\nstream\n(.*?)endstream`).FindSubmatch(pdf)
	if m == nil {
		t.Fatal("no content stream")
	}
	if strconv.Itoa(len(m[2])) != string(m[1]) {
		t.Fatalf("stream /Length %s, but it is %d bytes", m[1], len(m[2]))
	}
	return string(m[2])
}
