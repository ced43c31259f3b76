package label

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type svgDoc struct {
	XMLName xml.Name   `xml:"http://www.w3.org/2000/svg svg"`
	Width   string     `xml:"width,attr"`
	Height  string     `xml:"height,attr"`
	ViewBox string     `xml:"viewBox,attr"`
	Groups  []svgGroup `xml:"g"`
}

type svgGroup struct {
	ID        string    `xml:"id,attr"`
	Transform string    `xml:"transform,attr"`
	Rects     []svgRect `xml:"rect"`
	Texts     []svgText `xml:"text"`
}

type svgRect struct {
	X      int `xml:"x,attr"`
	Y      int `xml:"y,attr"`
	Width  int `xml:"width,attr"`
	Height int `xml:"height,attr"`
}

type svgText struct {
	X          float64 `xml:"x,attr"`
	Y          float64 `xml:"y,attr"`
	TextLength float64 `xml:"textLength,attr"`
	Text       string  `xml:",chardata"`
}

func encodeSVG(tb testing.TB, l Label) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := SVG(&b, l); err != nil {
		tb.Fatalf("SVG(%+v): %v", l, err)
	}
	return b.Bytes()
}

func TestSVG(t *testing.T) {
	code := codeWithCheck(t, "0123456789ABCDEF")
	for _, l := range []Label{
		sampleLabel(t),
		{Serial: "1", LabelCode: code},
		{Serial: "gw_Lower.case-9", LabelCode: strings.ToLower(code), Model: `Meter & Co <x> "y"`},
		{Serial: strings.Repeat("Z", 64), LabelCode: codeEndingIn(t, "ZZZZZZZZZZZZZZ", '~'), Model: strings.Repeat("W", 32)},
	} {
		t.Run(l.Serial, func(t *testing.T) {
			raw := encodeSVG(t, l)
			var doc svgDoc
			if err := xml.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("encoding/xml cannot read the SVG: %v\n%s", err, raw)
			}
			if doc.Width != "50mm" || doc.Height != "30mm" || doc.ViewBox != "0 0 50 30" {
				t.Errorf("svg width %q height %q viewBox %q; want 50mm, 30mm, 0 0 50 30", doc.Width, doc.Height, doc.ViewBox)
			}
			groups := map[string]svgGroup{}
			for _, g := range doc.Groups {
				groups[g.ID] = g
			}
			p, err := Payload(l.Serial, l.LabelCode)
			if err != nil {
				t.Fatal(err)
			}
			want := wantSymbol(t, p)
			qr := groups["qr"]
			grid, area := rasterRects(t, qr.Rects, len(want))
			if dark := darkModules(want); area != dark {
				t.Errorf("the rects cover %d modules; the symbol has %d dark ones", area, dark)
			}
			for y := range want {
				for x := range want {
					if grid[y][x] != want[y][x] {
						t.Fatalf("module (%d,%d) is %v; go-qrcode's symbol has %v", x, y, grid[y][x], want[y][x])
					}
				}
			}
			if got := decodeQR(t, moduleImage(grid, 4)); got != p {
				t.Errorf("the rects' QR code reads %q; want %q", got, p)
			}

			var tx, ty, scale float64
			if _, err := fmt.Sscanf(qr.Transform, "translate(%g %g) scale(%g)", &tx, &ty, &scale); err != nil {
				t.Fatalf("QR transform %q: %v", qr.Transform, err)
			}
			qrRight := tx + float64(len(want)+quietModules)*scale
			if tx < quietModules*scale || ty < quietModules*scale || ty+float64(len(want)+quietModules)*scale > 30 {
				t.Errorf("QR at (%g, %g), module %g mm, %d modules: no quiet zone on the label", tx, ty, scale, len(want))
			}

			var texts []string
			for _, tx := range groups["text"].Texts {
				texts = append(texts, tx.Text)
				if tx.X < qrRight-0.001 || tx.X+tx.TextLength > 50-marginMM+0.001 || tx.Y <= 0 || tx.Y > 30 {
					t.Errorf("text %q at (%g, %g), %g mm long; want right of the QR (%g mm) and within the margins", tx.Text, tx.X, tx.Y, tx.TextLength, qrRight)
				}
			}
			joined := strings.Join(texts, "")
			if !strings.Contains(joined, l.Serial) || !strings.Contains(joined, l.Model) || !strings.HasSuffix(joined, shownCode(t, l.LabelCode)) {
				t.Errorf("texts %q; want the serial %q, the model %q and the code", texts, l.Serial, l.Model)
			}
			if strings.Contains(l.Model, "&") && !bytes.Contains(raw, []byte("Meter &amp; Co &lt;x&gt; &#34;y&#34;")) {
				t.Errorf("the model is not escaped in\n%s", raw)
			}
		})
	}
}

// rasterRects paints rects (in module units) on an n x n grid, refusing
// rects that leave it or overlap, and returns the grid and the area covered.
func rasterRects(t *testing.T, rects []svgRect, n int) ([][]bool, int) {
	t.Helper()
	grid := make([][]bool, n)
	for i := range grid {
		grid[i] = make([]bool, n)
	}
	area := 0
	for _, r := range rects {
		if r.X < 0 || r.Y < 0 || r.Width < 1 || r.Height != 1 || r.X+r.Width > n || r.Y >= n {
			t.Fatalf("rect %+v is not a run in a %d-module row", r, n)
		}
		for x := r.X; x < r.X+r.Width; x++ {
			if grid[r.Y][x] {
				t.Fatalf("rect %+v overlaps another", r)
			}
			grid[r.Y][x] = true
		}
		area += r.Width
	}
	// Runs are merged: no two rects touch end to end in a row.
	seen := map[[2]int]bool{}
	for _, r := range rects {
		seen[[2]int{r.X + r.Width, r.Y}] = true
	}
	for _, r := range rects {
		if seen[[2]int{r.X, r.Y}] {
			t.Errorf("rect %+v continues another: runs are not merged", r)
		}
	}
	return grid, area
}

// moduleImage draws a module grid at px pixels per module with a quiet zone.
func moduleImage(grid [][]bool, px int) image.Image {
	n := len(grid) + 2*quietModules
	img := image.NewPaletted(image.Rect(0, 0, n*px, n*px), palette)
	for y := range img.Bounds().Dy() {
		for x := range img.Bounds().Dx() {
			my, mx := y/px-quietModules, x/px-quietModules
			if my >= 0 && mx >= 0 && my < len(grid) && mx < len(grid) && grid[my][mx] {
				img.SetColorIndex(x, y, black)
			}
		}
	}
	return img
}

// TestSVGWithRsvg renders the SVG with librsvg's rsvg-convert, a renderer
// nobody here wrote, and reads the QR code back. It is skipped where
// rsvg-convert is not installed (Debian package librsvg2-bin).
func TestSVGWithRsvg(t *testing.T) {
	rsvg, err := exec.LookPath("rsvg-convert")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("rsvg-convert not installed; make test installs it (librsvg2-bin)")
		}
		t.Skip("rsvg-convert not installed (apt-get install librsvg2-bin)")
	}
	l := sampleLabel(t)
	out := filepath.Join(t.TempDir(), "label.png")
	cmd := exec.Command(rsvg, "--dpi-x", "300", "--dpi-y", "300", "--background-color", "white", "-o", out)
	cmd.Stdin = bytes.NewReader(encodeSVG(t, l))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rsvg-convert: %v\n%s", err, b)
	}
	img, err := readPNG(out)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 590 || b.Dx() > 592 || b.Dy() < 353 || b.Dy() > 355 {
		t.Errorf("rsvg-convert made %v at 300 dpi; want about 591 x 354", b)
	}
	p, _ := Payload(l.Serial, l.LabelCode)
	if got := decodeQR(t, img); got != p {
		t.Errorf("QR code rendered by rsvg-convert reads %q; want %q", got, p)
	}
}

func TestSVGGolden(t *testing.T) {
	golden(t, "label.svg", encodeSVG(t, sampleLabel(t)))
}
