// Package sparkline draws a series of numbers as one line of block
// characters, ▁ for the smallest value to █ for the largest.
package sparkline

import (
	"math"
	"strings"
)

var blocks = []rune("▁▂▃▄▅▆▇█")

// Render draws the last width values (all when width <= 0). A flat series
// is drawn at mid height; NaN and infinite values as a space.
func Render(values []float64, width int) string {
	if width > 0 && len(values) > width {
		values = values[len(values)-width:]
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	var b strings.Builder
	for _, v := range values {
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			b.WriteRune(' ')
		case hi == lo:
			b.WriteRune(blocks[len(blocks)/2-1])
		default:
			i := int(math.Round((v - lo) / (hi - lo) * float64(len(blocks)-1)))
			b.WriteRune(blocks[i])
		}
	}
	return b.String()
}
