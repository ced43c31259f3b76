package label

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ZPL writes the label as a ZPL II format for a 300 dpi Zebra printer:
// print width 591 and label length 354 dots (50 x 30 mm), the QR code as a
// ^BQN field (model 2, error correction M, automatic input mode) that the
// printer encodes, and the captions and values in the printer's scalable
// font 0, placed as [PNG] places them. The module size is chosen so that
// the symbol fits even if the printer encodes the whole payload in byte mode
// (the largest it can come out); it is ZPLAt(w, l, 300).
func ZPL(w io.Writer, l Label) error { return ZPLAt(w, l, DPI) }

// ZPLAt writes the label as ZPL II for a printer of dpi dots per inch: 203
// (8 dots/mm), 300 (12 dots/mm) or 600 (24 dots/mm). Positions and sizes are
// in the printer's dots, so a format is for printers of one resolution.
//
// Every field's data goes through ^FH with the bytes ZPL treats specially
// (^, ~ and the hex indicator _) written as hexadecimal, so a check symbol
// '~' prints as one; a Model holding '^' or '~' is refused all the same (see
// [Label]). Widths assume font 0 is no wider than Go Mono, which holds for
// digits and capitals.
func ZPLAt(w io.Writer, lab Label, dpi int) error {
	switch dpi {
	case 203, 300, 600:
	default:
		return fmt.Errorf("ZPL for %d dpi: want 203, 300 or 600", dpi)
	}
	l, p, err := build(lab, dpi, false)
	if err != nil {
		return err
	}
	// The symbol's size is the largest the printer may make (see newSymbol).
	// ^BQ magnifies 1 to 10 times; a smaller module is still centred.
	mag := min(l.module, 10)
	off := (l.module - mag) * l.modules / 2

	bw := bufio.NewWriterSize(w, 1024)
	fmt.Fprintf(bw, "^XA\n^CI0\n^PW%d\n^LL%d\n^LH0,0\n", l.w, l.h)
	fmt.Fprintf(bw, "^FO%d,%d^BQN,2,%d,M^FH^FDMA,%s^FS\n", l.qrX+off, l.qrY+off, mag, zplEscape(p))
	for _, t := range l.lines {
		// ^FT places the baseline; font 0 is bold already.
		fmt.Fprintf(bw, "^FT%d,%d^A0N,%d,%d^FH^FD%s^FS\n", t.x, t.y, t.size, t.size, zplEscape(t.text))
	}
	bw.WriteString("^XZ\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write label ZPL: %w", err)
	}
	return nil
}

// zplEscape writes s for a ^FD preceded by ^FH: '^' and '~' would start a
// command, '_' would start a hex escape, so each is written as _XX.
func zplEscape(s string) string {
	if !strings.ContainsAny(s, "^~_") {
		return s
	}
	var b strings.Builder
	for i := range len(s) {
		switch c := s[i]; c {
		case '^', '~', '_':
			fmt.Fprintf(&b, "_%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
