package label

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

func pngOf(tb testing.TB, l Label) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := PNG(&b, l); err != nil {
		tb.Fatalf("PNG(%+v): %v", l, err)
	}
	return b.Bytes()
}

// decodeQR reads the QR code in img with gozxing, a decoder nobody here wrote.
func decodeQR(tb testing.TB, img image.Image) string {
	tb.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := zxqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		tb.Fatalf("decode the QR code: %v", err)
	}
	return res.GetText()
}

func TestPNG(t *testing.T) {
	code := codeWithCheck(t, "0123456789ABCDEF")
	for _, l := range []Label{
		sampleLabel(t),
		{Serial: "1", LabelCode: code},
		{Serial: "gw_Lower.case-9", LabelCode: strings.ToLower(code), Model: "Meter & Co <x>"},
		{Serial: "GW-1", LabelCode: codeEndingIn(t, "ABCDEFGHJKMNPQ", '~'), Model: "M"},
		{Serial: strings.Repeat("Z", 64), LabelCode: codeEndingIn(t, "ZZZZZZZZZZZZZZ", '$'), Model: strings.Repeat("W", 32)},
	} {
		t.Run(l.Serial, func(t *testing.T) {
			b := pngOf(t, l)
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("image/png cannot decode the label: %v", err)
			}
			if got := img.Bounds(); got != image.Rect(0, 0, 591, 354) {
				t.Errorf("bounds %v; want 591 x 354", got)
			}
			want, err := Payload(l.Serial, l.LabelCode)
			if err != nil {
				t.Fatal(err)
			}
			if got := decodeQR(t, img); got != want {
				t.Errorf("QR code reads %q; want %q", got, want)
			}
			checkModules(t, img, l, want)
		})
	}
}

// checkModules samples the centre of every module of the QR code in img and
// compares them with the symbol go-qrcode makes of payload, and checks the
// quiet zone is white and that each module is a whole square of pixels.
func checkModules(t *testing.T, img image.Image, l Label, payload string) {
	t.Helper()
	lay, _, err := build(l, DPI, true)
	if err != nil {
		t.Fatal(err)
	}
	want := wantSymbol(t, payload)
	m := lay.module
	bad := 0
	for y := -quietModules; y < len(want)+quietModules; y++ {
		for x := -quietModules; x < len(want)+quietModules; x++ {
			dark := y >= 0 && x >= 0 && y < len(want) && x < len(want) && want[y][x]
			for _, p := range []image.Point{{0, 0}, {m - 1, 0}, {0, m - 1}, {m - 1, m - 1}, {m / 2, m / 2}} {
				if isDark(img, lay.qrX+x*m+p.X, lay.qrY+y*m+p.Y) != dark {
					bad++
				}
			}
		}
	}
	if bad != 0 {
		t.Errorf("%d module samples differ from go-qrcode's symbol or the quiet zone", bad)
	}
}

// isDark reports whether the pixel at (x, y) is closer to black than white.
func isDark(img image.Image, x, y int) bool {
	return color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y < 0x80
}

// TestPNGFormat checks the chunk stream: a 1-bit greyscale image, with pHYs
// saying 300 dpi before the image data, and every CRC right.
func TestPNGFormat(t *testing.T) {
	b := pngOf(t, sampleLabel(t))
	if string(b[:8]) != "\x89PNG\r\n\x1a\n" {
		t.Fatalf("no PNG signature")
	}
	var order []string
	for p := b[8:]; len(p) > 0; {
		if len(p) < 12 {
			t.Fatalf("truncated chunk after %v", order)
		}
		n := int(binary.BigEndian.Uint32(p))
		typ, data := string(p[4:8]), p[8:8+n]
		if crc := binary.BigEndian.Uint32(p[8+n:]); crc != crc32.ChecksumIEEE(p[4:8+n]) {
			t.Errorf("chunk %s: bad CRC", typ)
		}
		switch typ {
		case "IHDR":
			if depth, colour := data[8], data[9]; depth != 1 || colour != 0 {
				t.Errorf("IHDR: bit depth %d, colour type %d; want 1, 0 (greyscale)", depth, colour)
			}
		case "pHYs":
			x, y, unit := binary.BigEndian.Uint32(data), binary.BigEndian.Uint32(data[4:]), data[8]
			if x != 11811 || y != 11811 || unit != 1 {
				t.Errorf("pHYs: %d x %d per unit %d; want 11811 x 11811 per metre (300 dpi)", x, y, unit)
			}
		}
		if len(order) == 0 || order[len(order)-1] != typ {
			order = append(order, typ)
		}
		p = p[12+n:]
	}
	if got := strings.Join(order, " "); got != "IHDR pHYs IDAT IEND" {
		t.Errorf("chunks %s; want IHDR pHYs IDAT IEND", got)
	}
}

// referenceText renders the lines of text with font.Drawer straight from
// golang.org/x/image, one glyph at each position the label uses, thresholded
// at half coverage: the label's text is compared with it.
func referenceText(t *testing.T, lines []textLine) *image.Alpha {
	t.Helper()
	img := image.NewAlpha(image.Rect(0, 0, 591, 354))
	for _, line := range lines {
		ttf := gomono.TTF
		if line.bold {
			ttf = gomonobold.TTF
		}
		f, err := opentype.Parse(ttf)
		if err != nil {
			t.Fatal(err)
		}
		face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: float64(line.size), DPI: 72, Hinting: font.HintingNone})
		if err != nil {
			t.Fatal(err)
		}
		if adv, _ := face.GlyphAdvance('0'); adv != fixed.Int26_6(monoAdvance*float64(line.size)*64+0.5) && adv != fixed.Int26_6(monoAdvance*float64(line.size)*64) {
			t.Errorf("Go Mono advance at %d dots is %v; monoAdvance says %v", line.size, adv, monoAdvance*float64(line.size))
		}
		d := font.Drawer{Dst: img, Src: image.Opaque, Face: face}
		for i, r := range line.text {
			d.Dot = fixed.P(line.x+int(float64(i)*monoAdvance*float64(line.size)+0.5), line.y)
			d.DrawString(string(r))
		}
	}
	for i, a := range img.Pix {
		if a >= 0x80 {
			img.Pix[i] = 0xff
		} else {
			img.Pix[i] = 0
		}
	}
	return img
}

// TestPNGText compares the label outside its QR area with a reference
// rendering of the text it must hold, and checks that the comparison tells
// a code one symbol off.
func TestPNGText(t *testing.T) {
	l := sampleLabel(t)
	img, err := png.Decode(bytes.NewReader(pngOf(t, l)))
	if err != nil {
		t.Fatal(err)
	}
	lay, _, err := build(l, DPI, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"SERIAL", "GW-000042", "MODEL", "PumpCtl 3000", "CLAIM CODE", l.LabelCode}
	var got []string
	for _, line := range lay.lines {
		got = append(got, line.text)
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("text lines %q; want %q", got, want)
	}
	qrArea := image.Rect(0, 0, lay.textX, lay.h)
	differ := func(ref *image.Alpha) (diff, ink int) {
		for y := range lay.h {
			for x := range lay.w {
				if (image.Point{x, y}).In(qrArea) {
					continue
				}
				on := isDark(img, x, y)
				if ref.AlphaAt(x, y).A != 0 {
					ink++
				}
				if on != (ref.AlphaAt(x, y).A != 0) {
					diff++
				}
			}
		}
		return diff, ink
	}
	diff, ink := differ(referenceText(t, lay.lines))
	// Where glyph boxes overlap, the reference adds coverage; allow for it.
	tolerance := ink / 500
	if ink < 2000 || diff > tolerance {
		t.Errorf("text area: %d pixels differ from the reference's %d inked ones; want at most %d", diff, ink, tolerance)
	}
	// The same with a code one symbol off (3 for 8, the closest pair) must
	// differ by more.
	off := append([]textLine(nil), lay.lines...)
	last := &off[len(off)-1]
	last.text = strings.Replace(last.text, "0123", "0128", 1)
	if d, _ := differ(referenceText(t, off)); d <= tolerance {
		t.Errorf("text area: only %d pixels differ from a reference with another code; the comparison is blind", d)
	}
}

// TestPNGGolden compares the sample label pixel by pixel with
// testdata/label.png, which shows reviewers what a label looks like.
func TestPNGGolden(t *testing.T) {
	b := pngOf(t, sampleLabel(t))
	if *update {
		golden(t, "label.png", b)
		return
	}
	want, err := readPNG("testdata/label.png")
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	got, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if want.Bounds() != got.Bounds() {
		t.Fatalf("bounds %v; testdata/label.png has %v", got.Bounds(), want.Bounds())
	}
	diff := 0
	for y := range 354 {
		for x := range 591 {
			r1, _, _, _ := want.At(x, y).RGBA()
			r2, _, _, _ := got.At(x, y).RGBA()
			if r1 != r2 {
				diff++
			}
		}
	}
	// A few pixels may differ where floating point differs by platform.
	if diff > 50 {
		t.Errorf("%d pixels differ from testdata/label.png (go test -update rewrites it)", diff)
	}
}

// TestPNGConcurrent renders labels from several goroutines at once, for the
// race detector and the shared glyph cache.
func TestPNGConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	out := make([][]byte, 8)
	for i := range out {
		wg.Go(func() {
			var b bytes.Buffer
			if err := PNG(&b, sampleLabel(t)); err != nil {
				t.Error(err)
			}
			out[i] = b.Bytes()
		})
	}
	wg.Wait()
	for i := range out {
		if !bytes.Equal(out[i], out[0]) {
			t.Errorf("label %d differs from label 0 rendered at the same time", i)
		}
	}
}

func readPNG(path string) (image.Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return png.Decode(bytes.NewReader(b))
}

// TestPackRow compares packRow with packing bit by bit, on every length to
// two words and on all 256 patterns of a byte.
func TestPackRow(t *testing.T) {
	for n := range 17 {
		for pattern := range 256 {
			pix := make([]byte, n)
			for i := range pix {
				pix[i] = byte(pattern>>(i%8)) & 1
			}
			want := make([]byte, (n+7)/8)
			for i, p := range pix {
				if p == 0 { // white is 1
					want[i/8] |= 0x80 >> (i % 8)
				}
			}
			got := packRow(nil, pix)
			for i := range want {
				// Pad bits of the last byte may be anything.
				mask := byte(0xff)
				if rest := n - 8*i; rest < 8 {
					mask = ^byte(0xff >> rest)
				}
				if len(got) != len(want) || got[i]&mask != want[i] {
					t.Fatalf("packRow(%v) = %08b; want %08b", pix, got, want)
				}
			}
		}
	}
}
