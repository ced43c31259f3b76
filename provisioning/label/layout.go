package label

import (
	"fmt"
	"math"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/gwpki/gwpki/ca"
)

// The label's size.
const (
	WidthMM  = 50
	HeightMM = 30
	// DPI is the resolution of [PNG] and of [ZPL]'s dot positions.
	DPI = 300
)

// Layout constants, in millimetres unless named otherwise.
const (
	marginMM     = 1.0  // white border the printer may not reach
	qrMaxShare   = 0.42 // at most this share of the width goes to the QR area
	quietModules = 4    // ISO/IEC 18004 quiet zone
	minModule    = 3    // dots; smaller modules do not print or scan reliably
	captionMM    = 1.6  // em size of the captions
	valueMaxMM   = 3.0  // em size of the values at most
	valueMinMM   = 1.3  // em size below which a value wraps instead of shrinking
	maxModelLen  = 32
)

// monoAdvance is the advance of every Go Mono glyph, in ems (1229/2048).
const monoAdvance = 1229.0 / 2048

// Label is what goes on a gateway's label.
type Label struct {
	// Serial is the gateway serial (see [ca.ValidateSerial]).
	Serial string
	// LabelCode is the gateway's single-use claim code. It is printed as
	// shown, XXXX-XXXX-XXXX-XXXX-C; any form [ParsePayload] accepts will do.
	LabelCode string
	// Model is the product name or number; empty leaves its line out. At
	// most 32 printable ASCII characters, and no '^' or '~' (ZPL's prefixes).
	Model string
}

// checked returns the label's serial, canonical code and model, or an error
// matching ErrInvalidLabel.
func (l Label) checked() (serial, code, model string, err error) {
	if err := ca.ValidateSerial(l.Serial); err != nil {
		return "", "", "", fmt.Errorf("%w: %w", ErrInvalidLabel, err)
	}
	code, err = normalizeCode(l.LabelCode)
	if err != nil {
		return "", "", "", fmt.Errorf("%w: %w", ErrInvalidLabel, err)
	}
	if len(l.Model) > maxModelLen {
		return "", "", "", fmt.Errorf("%w: model is longer than %d characters", ErrInvalidLabel, maxModelLen)
	}
	for i := range len(l.Model) {
		if c := l.Model[i]; c < ' ' || c > '~' || c == '^' || c == '~' {
			return "", "", "", fmt.Errorf("%w: model %q may only hold printable ASCII characters other than '^' and '~'", ErrInvalidLabel, l.Model)
		}
	}
	return l.Serial, code, l.Model, nil
}

// symbol is a QR code without its quiet zone.
type symbol struct {
	modules int      // on a side
	dark    [][]bool // dark[y][x] is module (x, y); nil if not drawn
}

// newSymbol encodes payload with error correction level M. Drawing the
// modules (go-qrcode tries the eight masks) is most of the cost of a label,
// so it is done only when draw is set. Without draw the symbol is not
// encoded at all: it is given the size a printer that encodes payload itself
// might make at most, all of it in byte mode, which is never smaller than
// go-qrcode's choice of modes.
func newSymbol(payload string, draw bool) (symbol, error) {
	if !draw {
		v, err := byteModeVersion(len(payload))
		return symbol{modules: 17 + 4*v}, err
	}
	q, err := qrcode.New(payload, qrcode.Medium)
	if err != nil {
		return symbol{}, fmt.Errorf("encode QR code: %w", err)
	}
	q.DisableBorder = true
	s := symbol{modules: 17 + 4*q.VersionNumber, dark: q.Bitmap()}
	if len(s.dark) != s.modules {
		return symbol{}, fmt.Errorf("encode QR code: %d modules for version %d", len(s.dark), q.VersionNumber)
	}
	return s, nil
}

// byteCapacityM is how many bytes QR versions 1 to 10 hold in byte mode at
// error correction level M (ISO/IEC 18004 table 7). A payload holds at most
// 7 + 64 + 1 + 17 = 89.
var byteCapacityM = [...]int{14, 26, 42, 62, 84, 106, 122, 152, 180, 213}

// byteModeVersion returns the smallest version that holds n bytes in byte
// mode at level M.
func byteModeVersion(n int) (int, error) {
	for i, c := range byteCapacityM {
		if n <= c {
			return i + 1, nil
		}
	}
	return 0, fmt.Errorf("encode QR code: %d bytes is too long for a label", n)
}

// textLine is one line of text, placed in dots.
type textLine struct {
	text string
	bold bool
	size int // em size in dots
	x, y int // start of the baseline
}

// layout is where everything goes on a label at some resolution, in dots.
type layout struct {
	dpi        int
	w, h       int
	module     int // QR module size in dots
	modules    int // QR symbol size in modules, quiet zone excluded
	qrX, qrY   int // top-left corner of the symbol's first module
	textX      int // left edge of the text column
	textRight  int // right limit of the text column
	lines      []textLine
	symbolDark [][]bool // nil unless drawn
}

func dots(mm float64, dpi int) int { return int(math.Round(mm * float64(dpi) / 25.4)) }

// newLayout places the symbol and the text of a checked label.
func newLayout(dpi int, sym symbol, serial, code, model string) (layout, error) {
	l := layout{
		dpi:        dpi,
		w:          dots(WidthMM, dpi),
		h:          dots(HeightMM, dpi),
		modules:    sym.modules,
		symbolDark: sym.dark,
	}
	margin := dots(marginMM, dpi)
	area := l.modules + 2*quietModules
	l.module = min(int(qrMaxShare*float64(l.w))-margin, l.h-2*margin) / area
	if l.module < minModule {
		return layout{}, fmt.Errorf("%w: the QR code needs %d modules, too many for the label", ErrInvalidLabel, l.modules)
	}
	l.qrX = margin + quietModules*l.module
	l.qrY = (l.h - l.modules*l.module) / 2
	l.textX = margin + area*l.module
	l.textRight = l.w - margin

	caption := dots(captionMM, dpi)
	valueMax := dots(valueMaxMM, dpi)
	valueMin := dots(valueMinMM, dpi)
	width := l.textRight - l.textX
	type block struct {
		caption string
		value   []string
		size    int
	}
	var blocks []block
	add := func(capt, value string) {
		size, lines := fit(value, width, valueMin, valueMax)
		blocks = append(blocks, block{capt, lines, size})
	}
	add("SERIAL", serial)
	if model != "" {
		add("MODEL", model)
	}
	add("CLAIM CODE", formatCode(code))

	// Each line takes 1.2 ems; blocks are 0.6 caption ems apart.
	lineH := func(size int) int { return size * 6 / 5 }
	gap := caption * 3 / 5
	total := gap * (len(blocks) - 1)
	for _, b := range blocks {
		total += lineH(caption) + len(b.value)*lineH(b.size)
	}
	top := (l.h - total) / 2
	for _, b := range blocks {
		// Baseline at 0.9 em below the top of its line.
		l.lines = append(l.lines, textLine{text: b.caption, size: caption, x: l.textX, y: top + caption*9/10})
		top += lineH(caption)
		for _, v := range b.value {
			l.lines = append(l.lines, textLine{text: v, bold: true, size: b.size, x: l.textX, y: top + b.size*9/10})
			top += lineH(b.size)
		}
		top += gap
	}
	return l, nil
}

// fit returns the largest em size from min to max at which s fits in width
// dots of Go Mono on one line, or s cut into lines at size min.
func fit(s string, width, minSize, maxSize int) (int, []string) {
	size := int(float64(width) / (monoAdvance * float64(len(s))))
	if size >= minSize {
		return min(size, maxSize), []string{s}
	}
	per := max(1, int(float64(width)/(monoAdvance*float64(minSize))))
	var lines []string
	for len(s) > per {
		lines = append(lines, s[:per])
		s = s[per:]
	}
	return minSize, append(lines, s)
}

// build checks a label and lays it out at dpi, with the QR modules if draw is
// set. It also returns the payload.
func build(lab Label, dpi int, draw bool) (layout, string, error) {
	serial, code, model, err := lab.checked()
	if err != nil {
		return layout{}, "", err
	}
	p := payload(serial, code)
	sym, err := newSymbol(p, draw)
	if err != nil {
		return layout{}, "", err
	}
	l, err := newLayout(dpi, sym, serial, code, model)
	return l, p, err
}
