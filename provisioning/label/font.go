package label

import (
	"fmt"
	"image"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// The fonts are Go Mono and Go Mono Bold, bundled with golang.org/x/image
// (BSD licence): monospaced, so the layout knows every width in advance, with
// 0/O and 1/l/I told apart, which matters for a code typed by hand.
var fonts = sync.OnceValues(func() ([2]*opentype.Font, error) {
	var fs [2]*opentype.Font
	for i, ttf := range [][]byte{gomono.TTF, gomonobold.TTF} {
		f, err := opentype.Parse(ttf)
		if err != nil {
			return fs, fmt.Errorf("parse bundled font: %w", err)
		}
		fs[i] = f
	}
	return fs, nil
})

// glyph is a rasterised glyph thresholded to one bit.
type glyph struct {
	x0, y0 int    // top-left of the bitmap relative to the dot on the baseline
	w, h   int    // size of the bitmap
	ink    []bool // w*h, row by row
}

type glyphKey struct {
	bold bool
	size int
	r    rune
}

// glyphs caches rasterised glyphs across labels: a label's text uses few sizes
// and only printable ASCII, and rasterising is most of the cost of drawing
// text. Faces are not safe for concurrent use, so they are used under faceMu.
var (
	glyphs sync.Map // glyphKey -> *glyph
	faceMu sync.Mutex
	faces  = map[faceKey]font.Face{}
)

type faceKey struct {
	bold bool
	size int
}

// getGlyph returns the glyph of r in Go Mono (Bold) at size dots per em.
func getGlyph(bold bool, size int, r rune) (*glyph, error) {
	k := glyphKey{bold, size, r}
	if g, ok := glyphs.Load(k); ok {
		return g.(*glyph), nil
	}
	faceMu.Lock()
	defer faceMu.Unlock()
	if g, ok := glyphs.Load(k); ok {
		return g.(*glyph), nil
	}
	fk := faceKey{bold, size}
	face := faces[fk]
	if face == nil {
		fs, err := fonts()
		if err != nil {
			return nil, err
		}
		f := fs[0]
		if bold {
			f = fs[1]
		}
		// At 72 dpi a point is a dot.
		face, err = opentype.NewFace(f, &opentype.FaceOptions{Size: float64(size), DPI: 72, Hinting: font.HintingNone})
		if err != nil {
			return nil, fmt.Errorf("load font face: %w", err)
		}
		faces[fk] = face
	}
	dr, mask, mp, _, ok := face.Glyph(fixed.Point26_6{}, r)
	if !ok {
		return nil, fmt.Errorf("the bundled font has no glyph for %q", r)
	}
	g := &glyph{x0: dr.Min.X, y0: dr.Min.Y, w: dr.Dx(), h: dr.Dy(), ink: make([]bool, dr.Dx()*dr.Dy())}
	for y := range g.h {
		for x := range g.w {
			_, _, _, a := mask.At(mp.X+x, mp.Y+y).RGBA()
			g.ink[y*g.w+x] = a >= 0x8000
		}
	}
	glyphs.Store(k, g)
	return g, nil
}

// drawText sets the pixels of line's text to index ink in img, one bit per
// pixel: the text of a label printed on a thermal printer has no grey.
func drawText(img *image.Paletted, line textLine, ink uint8) error {
	adv := monoAdvance * float64(line.size)
	b := img.Bounds()
	for i := range len(line.text) {
		g, err := getGlyph(line.bold, line.size, rune(line.text[i]))
		if err != nil {
			return err
		}
		ox := line.x + int(float64(i)*adv+0.5) + g.x0
		oy := line.y + g.y0
		for y := range g.h {
			py := oy + y
			if py < b.Min.Y || py >= b.Max.Y {
				continue
			}
			row := img.Pix[(py-b.Min.Y)*img.Stride:]
			ink1 := g.ink[y*g.w : (y+1)*g.w]
			for x, on := range ink1 {
				if px := ox + x; on && px >= b.Min.X && px < b.Max.X {
					row[px-b.Min.X] = ink
				}
			}
		}
	}
	return nil
}
