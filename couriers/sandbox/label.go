package sandbox

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"
	"strings"

	"github.com/boombuler/barcode/code128"
	"github.com/packline/packline"
	"github.com/packline/packline/couriers"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/unicode/norm"
)

// The label is a 4×6 inch page: 288×432 PostScript points.
const (
	pageW  = 288.0
	pageH  = 432.0
	margin = 14.0
)

// Fonts: the standard PDF fonts every viewer and printer has, so nothing is
// embedded and the file stays small. They cover the Windows-1252 repertoire
// (Latin scripts); other characters print as "?".
const (
	fontRegular = "F1" // Helvetica
	fontBold    = "F2" // Helvetica-Bold
	fontMono    = "F3" // Courier-Bold, 600/1000 em per character
)

// renderLabel draws the label: sender, recipient, a Code 128 barcode of the
// tracking number with the number under it, and the order reference. The
// output depends only on its arguments (no dates, no ids), so the same
// request gives the same bytes.
func renderLabel(req couriers.LabelRequest, trackingNumber string) ([]byte, error) {
	var p page
	top := pageH - margin

	// Header: courier and service.
	p.text(fontBold, 16, margin, top-14, "SANDBOX COURIER")
	p.textRight(fontRegular, 9, pageW-margin, top-12, "STANDARD")
	if req.WeightGrams > 0 {
		p.textRight(fontRegular, 9, pageW-margin, top-23, formatWeight(req.WeightGrams))
	}
	y := top - 30
	p.rule(y, 1.5)

	// Sender, small.
	y -= 11
	p.text(fontBold, 7, margin, y, "FROM")
	y -= 11
	for _, l := range partyLines(req.From, 3) {
		p.text(fontRegular, 9, margin, y, fit(fontRegular, 9, l))
		y -= 10.5
	}
	y -= 2
	p.rule(y, 0.75)

	// Recipient, large.
	y -= 12
	p.text(fontBold, 7, margin, y, "SHIP TO")
	y -= 17
	name := wrap(fontBold, 15, req.To.Name, 2)
	for _, l := range name {
		p.text(fontBold, 15, margin, y, l)
		y -= 17
	}
	for _, l := range addressLines(req.To.Address, 6-len(name)) {
		p.text(fontRegular, 12, margin, y, l)
		y -= 14
	}
	if req.To.Phone != "" {
		p.text(fontRegular, 10, margin, y, fit(fontRegular, 10, "Tel. "+req.To.Phone))
	}

	// Barcode block, anchored to the bottom so it never moves.
	const (
		barBottom = 92.0
		barHeight = 72.0
	)
	p.rule(barBottom+barHeight+14, 1.5)
	if err := p.code128(trackingNumber, barBottom, barHeight); err != nil {
		return nil, err
	}
	p.textCenter(fontMono, 13, barBottom-16, trackingNumber)
	p.rule(barBottom-26, 0.75)

	ref := req.Reference
	if ref == "" {
		ref = req.Key
	}
	p.text(fontBold, 7, margin, 52, "ORDER")
	p.text(fontRegular, 12, margin, 38, fit(fontRegular, 12, ref))
	p.textCenter(fontRegular, 6.5, margin, "Sandbox label: not valid for carriage")

	return p.document("Shipping label " + trackingNumber), nil
}

// partyLines is a sender's name and address in at most n+1 lines.
func partyLines(pt couriers.Party, n int) []string {
	out := []string{pt.Name}
	a := pt.Address
	// The sender block is small: street, then city line, then country.
	street := strings.TrimSpace(strings.Join(nonEmpty(a.Line1, a.Line2), ", "))
	out = append(out, nonEmpty(street, cityLine(a), a.Country)...)
	if len(out) > n+1 {
		out = out[:n+1]
	}
	return out
}

// addressLines is a recipient's address, each line fitted to the label,
// long lines wrapped, at most n lines.
func addressLines(a packline.Address, n int) []string {
	var out []string
	for _, l := range nonEmpty(a.Line1, a.Line2, cityLine(a), a.Country) {
		out = append(out, wrap(fontRegular, 12, l, 2)...)
	}
	if len(out) > n {
		out = out[:n]
	}
	return out
}

func cityLine(a packline.Address) string {
	return strings.Join(nonEmpty(a.City, a.State, a.PostalCode), " ")
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func formatWeight(g int64) string {
	if g < 1000 {
		return strconv.FormatInt(g, 10) + " g"
	}
	return strconv.FormatFloat(float64(g)/1000, 'f', -1, 64) + " kg"
}

// page is one PDF page's content stream.
type page struct {
	buf bytes.Buffer
}

func (p *page) text(font string, size, x, y float64, s string) {
	fmt.Fprintf(&p.buf, "BT /%s %s Tf %s %s Td (%s) Tj ET\n", font, num(size), num(x), num(y), pdfString(s))
}

func (p *page) textRight(font string, size, right, y float64, s string) {
	p.text(font, size, right-width(font, size, s), y, s)
}

func (p *page) textCenter(font string, size, y float64, s string) {
	p.text(font, size, (pageW-width(font, size, s))/2, y, s)
}

// rule draws a horizontal line across the label at y.
func (p *page) rule(y, w float64) {
	fmt.Fprintf(&p.buf, "%s w %s %s m %s %s l S\n", num(w), num(margin), num(y), num(pageW-margin), num(y))
}

// code128 draws s as a Code 128 barcode, centred, as filled rectangles (one
// per bar), so it prints sharp at any resolution. It keeps a quiet zone of
// ten modules on each side.
func (p *page) code128(s string, bottom, height float64) error {
	bc, err := code128.Encode(s)
	if err != nil {
		return fmt.Errorf("code 128 of %q: %w", s, err)
	}
	modules := bc.Bounds().Dx()
	module := (pageW - 2*margin) / float64(modules+20)
	if module > 2 {
		module = 2
	}
	x0 := (pageW - module*float64(modules)) / 2
	p.buf.WriteString("0 g\n")
	for x := 0; x < modules; {
		if !isBar(bc.At(x, 0)) {
			x++
			continue
		}
		start := x
		for x < modules && isBar(bc.At(x, 0)) {
			x++
		}
		fmt.Fprintf(&p.buf, "%s %s %s %s re\n", num(x0+float64(start)*module), num(bottom),
			num(float64(x-start)*module), num(height))
	}
	p.buf.WriteString("f\n")
	return nil
}

func isBar(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r+g+b < 3*0x8000
}

// document wraps the page in a complete PDF 1.4 file with a correct
// cross-reference table.
func (p *page) document(title string) []byte {
	content := p.buf.Bytes()
	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %s %s] /Resources << /Font << /%s 4 0 R /%s 5 0 R /%s 6 0 R >> >> /Contents 7 0 R >>",
			num(pageW), num(pageH), fontRegular, fontBold, fontMono),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Courier-Bold /Encoding /WinAnsiEncoding >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", len(content), content),
		fmt.Sprintf("<< /Title (%s) /Producer (packline sandbox courier) >>", pdfString(title)),
	}
	var out bytes.Buffer
	// The binary comment tells transfer tools the file is binary.
	out.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objects))
	for i, o := range objects {
		offsets[i] = out.Len()
		fmt.Fprintf(&out, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := out.Len()
	fmt.Fprintf(&out, "xref\n0 %d\n0000000000 65535 f\r\n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&out, "%010d 00000 n\r\n", off)
	}
	fmt.Fprintf(&out, "trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n",
		len(objects)+1, len(objects), xref)
	return out.Bytes()
}

// num formats a coordinate with at most two decimals.
func num(f float64) string {
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}

// pdfString encodes s for a literal string in a content stream: to
// Windows-1252 (the fonts' encoding), with anything outside it as "?",
// control characters as spaces, and bytes outside printable ASCII escaped
// in octal so the file stays 7-bit.
func pdfString(s string) string {
	var b strings.Builder
	for _, r := range norm.NFC.String(s) {
		c, ok := charmap.Windows1252.EncodeRune(r)
		switch {
		case r < 0x20:
			c = ' '
		case !ok:
			c = '?'
		}
		switch {
		case c == '(' || c == ')' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x7f:
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// helvetica holds Helvetica's advance widths (1/1000 em) for ASCII 32–126,
// from its AFM. Other characters count as the widest Latin letter, so a
// measured line is never shorter than the printed one.
var helvetica = [95]int{
	278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // space to /
	556, 556, 556, 556, 556, 556, 556, 556, 556, 556, // 0-9
	278, 278, 584, 584, 584, 556, 1015, // : to @
	667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, // A-M
	722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, // N-Z
	278, 278, 278, 469, 556, 333, // [ to `
	556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, // a-m
	556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, // n-z
	334, 260, 334, 584, // { to ~
}

// width is the printed width of s in points. Bold is measured as regular
// plus 10%, which is never narrower than Helvetica-Bold.
func width(font string, size float64, s string) float64 {
	if font == fontMono {
		return 0.6 * size * float64(len([]rune(s)))
	}
	units := 0
	for _, r := range s {
		if r >= 32 && r <= 126 {
			units += helvetica[r-32]
		} else {
			units += 1000
		}
	}
	w := float64(units) / 1000 * size
	if font == fontBold {
		w *= 1.1
	}
	return w
}

const textWidth = pageW - 2*margin

// fit cuts s so it fits the label's width, ending it with "..." when cut.
func fit(font string, size float64, s string) string {
	if width(font, size, s) <= textWidth {
		return s
	}
	rs := []rune(s)
	for len(rs) > 0 && width(font, size, string(rs)+"...") > textWidth {
		rs = rs[:len(rs)-1]
	}
	return strings.TrimSpace(string(rs)) + "..."
}

// wrap breaks s at spaces into at most n lines that fit the label's width;
// the last line is cut with fit when the text is longer still.
func wrap(font string, size float64, s string, n int) []string {
	words := strings.Fields(s)
	var lines []string
	cur := ""
	for i, w := range words {
		next := strings.TrimSpace(cur + " " + w)
		if cur == "" || width(font, size, next) <= textWidth {
			cur = next
			continue
		}
		if len(lines) == n-1 {
			cur = strings.Join(append([]string{cur}, words[i:]...), " ")
			break
		}
		lines = append(lines, cur)
		cur = w
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	for i := range lines {
		lines[i] = fit(font, size, lines[i])
	}
	return lines
}
