package main

import (
	"fmt"
	"slices"
)

// A limit is how much a metric may grow over the soak before it counts as
// a leak: the larger of an absolute and a relative allowance.
type limit struct {
	abs float64 // in the metric's unit
	rel float64 // fraction of the first fifth's median
}

func (l limit) allowed(base float64) float64 { return max(l.abs, l.rel*base) }

func (l limit) String() string {
	switch {
	case l.abs > 0 && l.rel > 0:
		return fmt.Sprintf("+%g or +%g%%", l.abs, 100*l.rel)
	case l.abs > 0:
		return fmt.Sprintf("+%g", l.abs)
	default:
		return fmt.Sprintf("+%g%%", 100*l.rel)
	}
}

// growth is the verdict on one metric over the steady window.
type growth struct {
	first, last float64 // medians of the first and the last fifth
	change      float64 // last - first
	allowed     float64
	perHour     float64 // least-squares slope over the whole window, per hour
	ok          bool
}

// judge compares the median of the first fifth of the samples with the
// median of the last fifth: medians shrug off the spikes of a shared
// machine and the garbage collector's saw-tooth, and fifths far apart see
// a slow leak. The least-squares slope is reported, not judged: one burst
// near either end tilts it.
func judge(t, v []float64, l limit) growth {
	n := len(v)
	k := max(1, n/5)
	g := growth{first: median(v[:k]), last: median(v[n-k:])}
	g.change = g.last - g.first
	g.allowed = l.allowed(g.first)
	g.ok = g.change <= g.allowed
	g.perHour = slope(t, v) * 3600
	return g
}

// median of v (not modified).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// slope is the least-squares slope of v over t.
func slope(t, v []float64) float64 {
	n := float64(len(t))
	if n < 2 {
		return 0
	}
	var st, sv float64
	for i := range t {
		st += t[i]
		sv += v[i]
	}
	mt, mv := st/n, sv/n
	var num, den float64
	for i := range t {
		num += (t[i] - mt) * (v[i] - mv)
		den += (t[i] - mt) * (t[i] - mt)
	}
	if den == 0 {
		return 0
	}
	return num / den
}
