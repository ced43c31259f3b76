package label

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
)

// SVG writes the label as an SVG image 50 mm wide and 30 mm high whose user
// unit is the millimetre (viewBox "0 0 50 30"), laid out as [PNG] lays it out:
// the QR code as black rects, one per run of dark modules in a row, in a group
// scaled so that a module is one unit; the text as <text> in Go Mono (or the
// viewer's monospace font), each line held to its width with textLength.
func SVG(w io.Writer, lab Label) error {
	l, _, err := build(lab, DPI, true)
	if err != nil {
		return err
	}
	mm := func(d int) string { return num(float64(d)*25.4/float64(l.dpi), 3) }

	bw := bufio.NewWriterSize(w, 8192)
	bw.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%dmm" height="%dmm" viewBox="0 0 %d %d">`+"\n",
		WidthMM, HeightMM, WidthMM, HeightMM)
	fmt.Fprintf(bw, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", WidthMM, HeightMM)
	fmt.Fprintf(bw, `<g id="qr" transform="translate(%s %s) scale(%s)" fill="#000" shape-rendering="crispEdges">`+"\n",
		mm(l.qrX), mm(l.qrY), num(float64(l.module)*25.4/float64(l.dpi), 6))
	var rect []byte
	for y, row := range l.symbolDark {
		for x := 0; x < len(row); {
			if !row[x] {
				x++
				continue
			}
			run := x
			for x < len(row) && row[x] {
				x++
			}
			rect = append(rect[:0], `<rect x="`...)
			rect = strconv.AppendInt(rect, int64(run), 10)
			rect = append(rect, `" y="`...)
			rect = strconv.AppendInt(rect, int64(y), 10)
			rect = append(rect, `" width="`...)
			rect = strconv.AppendInt(rect, int64(x-run), 10)
			rect = append(rect, `" height="1"/>`+"\n"...)
			bw.Write(rect)
		}
	}
	bw.WriteString("</g>\n")
	bw.WriteString(`<g id="text" font-family="'Go Mono', 'DejaVu Sans Mono', monospace" fill="#000">` + "\n")
	for _, t := range l.lines {
		weight := ""
		if t.bold {
			weight = ` font-weight="bold"`
		}
		fmt.Fprintf(bw, `<text x="%s" y="%s" font-size="%s"%s textLength="%s" lengthAdjust="spacingAndGlyphs">`,
			mm(t.x), mm(t.y), mm(t.size), weight,
			num(monoAdvance*float64(len(t.text)*t.size)*25.4/float64(l.dpi), 3))
		xml.EscapeText(bw, []byte(t.text))
		bw.WriteString("</text>\n")
	}
	bw.WriteString("</g>\n</svg>\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write label SVG: %w", err)
	}
	return nil
}

// num writes v >= 0 with at most prec decimals: 3 is a micrometre; the
// module size takes 6, as it is multiplied by up to 41 + 4 modules.
func num(v float64, prec int) string {
	p := math.Pow10(prec)
	return strconv.FormatFloat(math.Round(v*p)/p, 'f', -1, 64)
}
