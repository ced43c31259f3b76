package sparkline

import (
	"math"
	"testing"
)

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []float64
		width  int
		want   string
	}{
		{"empty", nil, 10, ""},
		{"ramp", []float64{0, 1, 2, 3, 4, 5, 6, 7}, 0, "▁▂▃▄▅▆▇█"},
		{"extremes", []float64{10, -10, 10}, 0, "█▁█"},
		{"flat", []float64{3, 3, 3}, 0, "▄▄▄"},
		{"last width values", []float64{100, 0, 1}, 2, "▁█"},
		{"nan", []float64{0, math.NaN(), 7}, 0, "▁ █"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Render(tc.values, tc.width); got != tc.want {
				t.Errorf("Render(%v, %d) = %q; want %q", tc.values, tc.width, got, tc.want)
			}
		})
	}
}
