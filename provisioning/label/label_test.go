package label

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	qrcode "github.com/skip2/go-qrcode"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sampleLabel is the label of the golden files.
func sampleLabel(tb testing.TB) Label {
	tb.Helper()
	return Label{Serial: "GW-000042", LabelCode: formatCode(codeWithCheck(tb, "0123456789ABCDEF")), Model: "PumpCtl 3000"}
}

// shownCode is code as a label shows it.
func shownCode(tb testing.TB, code string) string {
	tb.Helper()
	c, err := normalizeCode(code)
	if err != nil {
		tb.Fatal(err)
	}
	return formatCode(c)
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(tb testing.TB, name string, got []byte) {
	tb.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		tb.Errorf("%s differs from the golden file (-want +got; go test -update rewrites it):\n%s", name, diff)
	}
}

// wantSymbol is the QR symbol of payload made straight with go-qrcode.
func wantSymbol(tb testing.TB, payload string) [][]bool {
	tb.Helper()
	q, err := qrcode.New(payload, qrcode.Medium)
	if err != nil {
		tb.Fatal(err)
	}
	q.DisableBorder = true
	return q.Bitmap()
}

func darkModules(m [][]bool) int {
	n := 0
	for _, row := range m {
		for _, d := range row {
			if d {
				n++
			}
		}
	}
	return n
}

// TestRenderersRefuse checks that every format refuses what Label documents
// as unprintable, with ErrInvalidLabel.
func TestRenderersRefuse(t *testing.T) {
	good := sampleLabel(t)
	renderers := map[string]func(*bytes.Buffer, Label) error{
		"PNG": func(b *bytes.Buffer, l Label) error { return PNG(b, l) },
		"ZPL": func(b *bytes.Buffer, l Label) error { return ZPL(b, l) },
		"SVG": func(b *bytes.Buffer, l Label) error { return SVG(b, l) },
	}
	for _, tc := range []struct {
		name string
		edit func(*Label)
		code bool
	}{
		{"empty serial", func(l *Label) { l.Serial = "" }, false},
		{"caret in serial", func(l *Label) { l.Serial = "GW^XZ" }, false},
		{"tilde in serial", func(l *Label) { l.Serial = "GW~JR" }, false},
		{"caret in model", func(l *Label) { l.Model = "Pump^XZ" }, false},
		{"tilde in model", func(l *Label) { l.Model = "Pump~JA" }, false},
		{"newline in model", func(l *Label) { l.Model = "Pump\n3000" }, false},
		{"non-ASCII model", func(l *Label) { l.Model = "Pumpé" }, false},
		{"long model", func(l *Label) { l.Model = strings.Repeat("M", 33) }, false},
		{"no code", func(l *Label) { l.LabelCode = "" }, true},
		{"wrong check", func(l *Label) { l.LabelCode = l.LabelCode[:len(l.LabelCode)-1] + "0" }, true},
		{"caret in code", func(l *Label) { l.LabelCode = "^" + l.LabelCode }, true},
	} {
		for name, render := range renderers {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				l := good
				tc.edit(&l)
				var b bytes.Buffer
				err := render(&b, l)
				if !errors.Is(err, ErrInvalidLabel) || errors.Is(err, ErrInvalidCode) != tc.code {
					t.Fatalf("%s(%+v) error %v; want ErrInvalidLabel, ErrInvalidCode %v", name, l, err, tc.code)
				}
				if b.Len() != 0 {
					t.Errorf("%s(%+v) wrote %d bytes before refusing", name, l, b.Len())
				}
			})
		}
	}
}

// TestLayoutFits lays out labels from the smallest to the largest payload,
// with and without a model, and checks that everything stays on the label,
// that the QR keeps its quiet zone and whole-dot modules, and that nothing
// overlaps.
func TestLayoutFits(t *testing.T) {
	code := codeWithCheck(t, "0123456789ABCDEF")
	for _, dpi := range []int{203, 300, 600} {
		for _, serial := range []string{"1", "GW-000042", strings.Repeat("W", 40), strings.Repeat("W", 64)} {
			for _, model := range []string{"", "M", strings.Repeat("W", 32)} {
				sym, err := newSymbol(payload(serial, code), true)
				if err != nil {
					t.Fatal(err)
				}
				l, err := newLayout(dpi, sym, serial, code, model)
				if err != nil {
					t.Fatalf("newLayout(%d dpi, serial %q, model %q): %v", dpi, serial, model, err)
				}
				name := func() string { return strings.Join([]string{serial, model}, "/") }
				if q := quietModules * l.module; l.qrX < q || l.qrY < q || l.qrY+l.modules*l.module+q > l.h || l.qrX+(l.modules+quietModules)*l.module > l.textX {
					t.Errorf("%d dpi %s: QR at (%d,%d), %d modules of %d dots, text at %d: no quiet zone of 4 modules", dpi, name(), l.qrX, l.qrY, l.modules, l.module, l.textX)
				}
				var all []string
				prevBottom := 0
				for _, line := range l.lines {
					all = append(all, line.text)
					right := line.x + int(monoAdvance*float64(len(line.text)*line.size)+0.999)
					top, bottom := line.y-line.size*9/10, line.y+line.size*3/10
					if line.x < l.textX || right > l.textRight || top < 0 || bottom > l.h || top < prevBottom {
						t.Errorf("%d dpi %s: line %q (size %d) spans x %d..%d, y %d..%d; want within x %d..%d, y %d..%d, below %d",
							dpi, name(), line.text, line.size, line.x, right, top, bottom, l.textX, l.textRight, 0, l.h, prevBottom)
					}
					prevBottom = bottom
				}
				joined := strings.Join(all, "")
				if !strings.Contains(joined, serial) || !strings.Contains(joined, model) || !strings.HasSuffix(joined, formatCode(code)) {
					t.Errorf("%d dpi %s: lines %q; want the serial, the model and then the code", dpi, name(), all)
				}
			}
		}
	}
}

// TestByteModeVersion checks the byte-mode capacities against go-qrcode
// with payloads that only byte mode can hold (lower-case letters).
func TestByteModeVersion(t *testing.T) {
	for n := 1; n <= byteCapacityM[len(byteCapacityM)-1]; n++ {
		q, err := qrcode.New(strings.Repeat("x", n), qrcode.Medium)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := byteModeVersion(n); err != nil || v != q.VersionNumber {
			t.Errorf("byteModeVersion(%d) = %d, %v; go-qrcode uses version %d", n, v, err, q.VersionNumber)
		}
	}
	if _, err := byteModeVersion(byteCapacityM[len(byteCapacityM)-1] + 1); err == nil {
		t.Errorf("byteModeVersion(%d): want an error", byteCapacityM[len(byteCapacityM)-1]+1)
	}
}
