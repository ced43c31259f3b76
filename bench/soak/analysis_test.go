package main

import (
	"math"
	"testing"
)

func TestJudge(t *testing.T) {
	ts := make([]float64, 100)
	flat := make([]float64, 100)
	leak := make([]float64, 100)
	for i := range ts {
		ts[i] = float64(5 * i)
		flat[i] = 1000
		if i%7 == 0 { // spikes the medians ignore
			flat[i] = 5000
		}
		leak[i] = 1000 + 2*float64(i) // +200 over the window
	}
	gor := limit{abs: 20, rel: 0.01}
	if g := judge(ts, flat, gor); !g.ok || g.change != 0 {
		t.Errorf("flat with spikes: %+v, want ok and no change", g)
	}
	g := judge(ts, leak, gor)
	if g.ok {
		t.Errorf("steady leak judged ok: %+v", g)
	}
	if want := 2.0 / 5 * 3600; math.Abs(g.perHour-want) > 1e-6 {
		t.Errorf("slope %v/h, want %v/h", g.perHour, want)
	}
	if g := judge(ts, leak, limit{rel: 0.2}); !g.ok {
		t.Errorf("a +16%% change within a 20%% limit: %+v", g)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
