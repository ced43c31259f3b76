package label

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
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
	img, err := render(l)
	if err != nil {
		return err
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	if err := encoder.Encode(buf, img); err != nil {
		return fmt.Errorf("encode label PNG: %w", err)
	}
	return writeWithPHYs(w, buf.Bytes())
}

// render draws the label at 300 dpi.
func render(lab Label) (*image.Paletted, error) {
	l, _, err := build(lab, DPI)
	if err != nil {
		return nil, err
	}
	img := image.NewPaletted(image.Rect(0, 0, l.w, l.h), palette)
	drawSymbol(img, l)
	for _, line := range l.lines {
		if err := drawText(img, line, black); err != nil {
			return nil, err
		}
	}
	return img, nil
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

var (
	encoder = png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: new(encoderPool)}
	bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

type encoderPool sync.Pool

func (p *encoderPool) Get() *png.EncoderBuffer {
	b, _ := (*sync.Pool)(p).Get().(*png.EncoderBuffer)
	return b
}

func (p *encoderPool) Put(b *png.EncoderBuffer) { (*sync.Pool)(p).Put(b) }

// physChunk is a PNG pHYs chunk for 300 dpi: 11811 pixels per metre.
var physChunk = func() []byte {
	const ppm = 11811 // 300 / 0.0254, rounded
	c := make([]byte, 0, 21)
	c = binary.BigEndian.AppendUint32(c, 9)
	c = append(c, "pHYs"...)
	c = binary.BigEndian.AppendUint32(c, ppm)
	c = binary.BigEndian.AppendUint32(c, ppm)
	c = append(c, 1) // unit: metre
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
}()

// ihdrEnd is where the IHDR chunk ends: the signature (8), then IHDR's length,
// type, 13 bytes of data and CRC. image/png always writes IHDR first.
const ihdrEnd = 8 + 4 + 4 + 13 + 4

// writeWithPHYs writes the PNG b with physChunk after IHDR (pHYs must come
// before the image data; image/png writes none).
func writeWithPHYs(w io.Writer, b []byte) error {
	if len(b) < ihdrEnd || string(b[12:16]) != "IHDR" {
		return fmt.Errorf("encode label PNG: unexpected chunk layout")
	}
	for _, part := range [][]byte{b[:ihdrEnd], physChunk, b[ihdrEnd:]} {
		if _, err := w.Write(part); err != nil {
			return fmt.Errorf("write label PNG: %w", err)
		}
	}
	return nil
}
