package label

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"io"
	"sync"
)

// palette is white (index 0, so a new image is blank) and black.
var palette = color.Palette{color.Gray{Y: 0xff}, color.Gray{Y: 0}}

const black = 1

// PNG writes the label as a 1-bit PNG of 50 x 30 mm at 300 dpi, 591 x 354
// pixels, with a pHYs chunk saying so: the QR code on the left (error
// correction M, a whole number of pixels per module, a quiet zone of four
// modules), the serial, the model and the label code on the right. It returns
// an error matching [ErrInvalidLabel] for a label that cannot be printed.
func PNG(w io.Writer, l Label) error {
	lay, _, err := build(l, DPI, true)
	if err != nil {
		return err
	}
	img := imagePool.Get().(*image.Paletted)
	defer imagePool.Put(img)
	clear(img.Pix)
	if err := render(img, lay); err != nil {
		return err
	}
	return encodePNG(w, img)
}

// imagePool holds blank-able 300 dpi label images.
var imagePool = sync.Pool{New: func() any {
	return image.NewPaletted(image.Rect(0, 0, dots(WidthMM, DPI), dots(HeightMM, DPI)), palette)
}}

// render draws a label laid out at 300 dpi on a blank image.
func render(img *image.Paletted, l layout) error {
	drawSymbol(img, l)
	for _, line := range l.lines {
		if err := drawText(img, line, black); err != nil {
			return err
		}
	}
	return nil
}

// drawSymbol draws the QR modules: each symbol row is drawn once as a row of
// pixels, then copied to the module's other pixel rows.
func drawSymbol(img *image.Paletted, l layout) {
	m := l.module
	for y, row := range l.symbolDark {
		top := l.qrY + y*m
		first := img.Pix[top*img.Stride+l.qrX : top*img.Stride+l.qrX+l.modules*m]
		for x, dark := range row {
			if dark {
				px := first[x*m : (x+1)*m]
				for i := range px {
					px[i] = black
				}
			}
		}
		for i := 1; i < m; i++ {
			copy(img.Pix[(top+i)*img.Stride+l.qrX:], first)
		}
	}
}

// pngState is the reusable memory of one PNG encoding.
type pngState struct {
	raw  []byte // filtered rows: a filter byte (0, none) and packed pixels
	idat bytes.Buffer
	zw   *zlib.Writer
	out  bytes.Buffer
}

var pngPool = sync.Pool{New: func() any {
	st := new(pngState)
	st.zw, _ = zlib.NewWriterLevel(&st.idat, zlib.BestSpeed)
	return st
}}

// physChunk is the data of a PNG pHYs chunk for 300 dpi: 11811 pixels per
// metre on both axes.
var physChunk = []byte{0, 0, 0x2e, 0x23, 0, 0, 0x2e, 0x23, 1}

// encodePNG writes img, whose pixels are palette indices, as a greyscale PNG
// of bit depth 1 (the PNG a label printer wants, and 1/8 of the data to
// compress of an 8-bit one) with a pHYs chunk of 300 dpi. image/png writes
// neither 1-bit greyscale nor pHYs, and encodes 1-bit images pixel by pixel
// through an interface, several times slower than this.
func encodePNG(w io.Writer, img *image.Paletted) error {
	st := pngPool.Get().(*pngState)
	defer pngPool.Put(st)
	width, height := img.Rect.Dx(), img.Rect.Dy()

	st.raw = st.raw[:0]
	for y := range height {
		st.raw = append(st.raw, 0)
		st.raw = packRow(st.raw, img.Pix[y*img.Stride:y*img.Stride+width])
	}
	st.idat.Reset()
	st.zw.Reset(&st.idat)
	if _, err := st.zw.Write(st.raw); err != nil {
		return fmt.Errorf("encode label PNG: %w", err)
	}
	if err := st.zw.Close(); err != nil {
		return fmt.Errorf("encode label PNG: %w", err)
	}

	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], uint32(width))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(height))
	ihdr[8] = 1 // bit depth; colour type 0 (greyscale), deflate, no filter method or interlace
	st.out.Reset()
	st.out.WriteString("\x89PNG\r\n\x1a\n")
	writeChunk(&st.out, "IHDR", ihdr[:])
	writeChunk(&st.out, "pHYs", physChunk)
	writeChunk(&st.out, "IDAT", st.idat.Bytes())
	writeChunk(&st.out, "IEND", nil)
	if _, err := w.Write(st.out.Bytes()); err != nil {
		return fmt.Errorf("write label PNG: %w", err)
	}
	return nil
}

// packRow appends pixels (indices: 0 white, 1 black) packed 8 to a byte,
// first pixel in the high bit, 1 for white as in a greyscale PNG.
func packRow(dst, pix []byte) []byte {
	for len(pix) >= 8 {
		// Bytes of 0 or 1, the first lowest: the product puts pixel k at
		// bit 63-k and its cross terms on distinct bits outside the top byte.
		v := binary.LittleEndian.Uint64(pix) * 0x8040201008040201
		dst = append(dst, ^byte(v>>56))
		pix = pix[8:]
	}
	if len(pix) > 0 {
		var b byte
		for i, p := range pix {
			b |= p << (7 - i)
		}
		dst = append(dst, ^b)
	}
	return dst
}

func writeChunk(b *bytes.Buffer, typ string, data []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	b.Write(n[:])
	b.WriteString(typ)
	b.Write(data)
	crc := crc32.Update(crc32.ChecksumIEEE([]byte(typ)), crc32.IEEETable, data)
	binary.BigEndian.PutUint32(n[:], crc)
	b.Write(n[:])
}
