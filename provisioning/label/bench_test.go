package label

import (
	"fmt"
	"io"
	"testing"
)

// benchLabels are distinct labels, so that a benchmark is not one label's
// QR code over and over (the glyphs are cached either way, as in production).
func benchLabels(b *testing.B) []Label {
	b.Helper()
	ls := make([]Label, 256)
	for i := range ls {
		symbols := fmt.Sprintf("%016X", uint64(i)*0x9E3779B97F4A7C15) // hex digits are Crockford symbols
		ls[i] = Label{Serial: fmt.Sprintf("GW-%06d", i), LabelCode: codeWithCheck(b, symbols), Model: "PumpCtl 3000"}
	}
	return ls
}

func benchmark(b *testing.B, render func(io.Writer, Label) error) {
	ls := benchLabels(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := render(io.Discard, ls[i%len(ls)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkPNG(b *testing.B) { benchmark(b, PNG) }
func BenchmarkZPL(b *testing.B) { benchmark(b, ZPL) }
func BenchmarkSVG(b *testing.B) { benchmark(b, SVG) }

// BenchmarkPNGParallel renders PNG labels on every CPU, as a line station
// making a batch would.
func BenchmarkPNGParallel(b *testing.B) {
	ls := benchLabels(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := PNG(io.Discard, ls[i%len(ls)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkPayload is the QR payload alone, for scale.
func BenchmarkPayload(b *testing.B) {
	ls := benchLabels(b)
	i := 0
	for b.Loop() {
		if _, err := Payload(ls[i%len(ls)].Serial, ls[i%len(ls)].LabelCode); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
