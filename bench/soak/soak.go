package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"
	"github.com/gwpki/gwpki/bench/internal/proc"
)

// The series read from the server's /metrics.
const (
	mGoroutines = "go_goroutines"
	mHeapInuse  = "go_memstats_heap_inuse_bytes"
	mHeapGoal   = "go_memstats_next_gc_bytes"
	mRSS        = "process_resident_memory_bytes"
	// Every message the telemetry store committed: the sum of its group
	// commits' sizes.
	mStored = "gwpki_telemetry_commit_batch_size_sum"
)

// sample is one reading.
type sample struct {
	at                    time.Duration // since the soak began
	goroutines            float64
	heapInuse, heapGoal   float64 // bytes
	rss, rssAnon, rssFile float64 // bytes: the server's resident memory, its anonymous and file-backed parts
	simAnon               float64 // bytes: the sim's anonymous resident memory
	stored                float64 // telemetry messages stored so far
	connected             int     // the sim's last summary
}

// A metric of the verdict table: how to read it from a sample, its unit,
// its limit; a zero limit means shown, not judged.
type metric struct {
	name  string
	unit  float64 // divide by this to print
	get   func(sample) float64
	limit limit
}

const mb = 1 << 20

// The limits, and why, are in README.md.
var metrics = []metric{
	{"server goroutines", 1, func(s sample) float64 { return s.goroutines }, limit{abs: 20, rel: 0.01}},
	{"server heap goal (MB)", mb, func(s sample) float64 { return s.heapGoal }, limit{rel: 0.10}},
	{"server heap in use (MB)", mb, func(s sample) float64 { return s.heapInuse }, limit{}},
	{"server RSS anon (MB)", mb, func(s sample) float64 { return s.rssAnon }, limit{rel: 0.10}},
	{"server RSS (MB)", mb, func(s sample) float64 { return s.rss }, limit{}},
	{"server RSS file (MB)", mb, func(s sample) float64 { return s.rssFile }, limit{}},
	{"sim RSS anon (MB)", mb, func(s sample) float64 { return s.simAnon }, limit{rel: 0.10}},
}

// minStoredShare is the least share of the offered messages/s the server
// must store over the soak.
const minStoredShare = 0.95

type soak struct {
	o            *options
	srv          *server
	sim          *harness.Process
	watch        *simWatcher
	out          io.Writer
	samples      []sample
	load0, load1 string
	// CPU time of the server and the sim over the soak.
	srvCPU, simCPU time.Duration
	errors         int // samples that could not be read
}

// sample reads the server and the sim every o.every for o.warmup then
// o.duration, printing a row of the table every minute. Only the samples
// after the warm-up are kept.
func (s *soak) sample(ctx context.Context) error {
	fmt.Fprintf(s.out, "%6s %10s %8s %8s %8s %8s %8s %8s %9s %12s\n", "time", "goroutines", "heap MB", "goal MB",
		"RSS MB", "anon MB", "file MB", "sim MB", "connected", "stored msg/s")
	start := time.Now()
	end := s.o.warmup + s.o.duration
	var srvCPU0, simCPU0 time.Duration
	tick := time.NewTicker(s.o.every)
	defer tick.Stop()
	var shown []sample // every sample, for the rows' rates
	lastRow, soaking := -1, false
	for {
		if err := alive(s.srv.Process, s.sim); err != nil {
			return err
		}
		now := time.Since(start)
		if !soaking && now >= s.o.warmup {
			soaking = true
			fmt.Fprintf(s.out, "%6s ---- warm-up over: the soak's samples start ----\n", fmtMin(now))
			s.watch.mark()
			s.load0 = harness.LoadAvg()
			srvCPU0, simCPU0 = cpu(s.srv.Process), cpu(s.sim)
		}
		m, err := s.srv.scrape(ctx)
		srvMem, memErr := proc.ProcessRSSParts(s.srv.PID())
		simMem, simErr := proc.ProcessRSSParts(s.sim.PID())
		memErr = errors.Join(memErr, simErr)
		if err != nil || memErr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if soaking {
				s.errors++
			}
			fmt.Fprintf(s.out, "%6s sample failed: %v %v\n", fmtMin(now), err, memErr)
		} else {
			x := sample{
				at: now, goroutines: m[mGoroutines], heapInuse: m[mHeapInuse], heapGoal: m[mHeapGoal],
				rss: m[mRSS], rssAnon: float64(srvMem.Anon), rssFile: float64(srvMem.File + srvMem.Shmem),
				simAnon: float64(simMem.Anon), stored: m[mStored], connected: s.watch.get().connected,
			}
			shown = append(shown, x)
			if soaking {
				s.samples = append(s.samples, x)
			}
			if row := int(now / time.Minute); row != lastRow || now >= end {
				lastRow = row
				s.printRow(shown)
			}
		}
		if now >= end {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	s.srvCPU, s.simCPU = cpu(s.srv.Process)-srvCPU0, cpu(s.sim)-simCPU0
	s.load1 = harness.LoadAvg()
	return nil
}

// printRow prints the last sample of xs with the stored messages/s since
// a minute before.
func (s *soak) printRow(xs []sample) {
	i := len(xs) - 1
	x := xs[i]
	rate := "-"
	for j := i - 1; j >= 0; j-- {
		if d := x.at - xs[j].at; d >= time.Minute-s.o.every/2 || j == 0 {
			rate = fmt.Sprintf("%.1f", (x.stored-xs[j].stored)/d.Seconds())
			break
		}
	}
	fmt.Fprintf(s.out, "%6s %10.0f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %9d %12s\n", fmtMin(x.at), x.goroutines,
		x.heapInuse/mb, x.heapGoal/mb, x.rss/mb, x.rssAnon/mb, x.rssFile/mb, x.simAnon/mb, x.connected, rate)
}

func fmtMin(d time.Duration) string {
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// report prints the verdicts and returns what failed.
func (s *soak) report(version string) []string {
	var failures []string
	n := len(s.samples)
	fmt.Fprintf(s.out, "\n%s; %d gateways, telemetry every %s; %d samples over %s, every %s; load average %s -> %s\n",
		version, s.o.gateways, s.o.interval, n, s.o.duration, s.o.every, s.load0, s.load1)
	if n < 10 {
		return append(failures, fmt.Sprintf("only %d samples (%d could not be read)", n, s.errors))
	}
	fmt.Fprintf(s.out, "\n%-24s %12s %12s %10s %10s %12s %-8s\n", "metric (medians)", "first fifth", "last fifth",
		"change", "limit", "slope/hour", "verdict")
	t := make([]float64, n)
	for i, x := range s.samples {
		t[i] = x.at.Seconds()
	}
	for _, m := range metrics {
		v := make([]float64, n)
		for i, x := range s.samples {
			v[i] = m.get(x)
		}
		g := judge(t, v, m.limit)
		verdict, lim := "ok", m.limit.String()
		if m.limit == (limit{}) {
			verdict, lim = "(shown)", "-"
		} else if !g.ok {
			verdict = "GROWTH"
			failures = append(failures, fmt.Sprintf("%s grew %+.1f (%+.1f%%), more than %s", m.name, g.change/m.unit,
				100*g.change/g.first, m.limit))
		}
		fmt.Fprintf(s.out, "%-24s %12.1f %12.1f %+10.1f %10s %+12.1f %-8s\n", m.name, g.first/m.unit, g.last/m.unit,
			g.change/m.unit, lim, g.perHour/m.unit, verdict)
	}

	// Checks: the fleet stayed online, telemetry kept being stored.
	st := s.watch.get()
	first, last := s.samples[0], s.samples[n-1]
	secs := (last.at - first.at).Seconds()
	offered := float64(s.o.gateways) / s.o.interval.Seconds()
	stored := (last.stored - first.stored) / secs
	flat := 0 // intervals of a minute or more in which nothing was stored
	for i, j := 0, 0; i < n; i++ {
		for j < i && s.samples[i].at-s.samples[j+1].at >= time.Minute {
			j++
		}
		if s.samples[i].at-s.samples[j].at >= time.Minute && s.samples[i].stored <= s.samples[j].stored {
			flat++
		}
	}
	fmt.Fprintln(s.out)
	check := func(ok bool, format string, a ...any) {
		verdict := "ok"
		if !ok {
			verdict = "FAIL"
			failures = append(failures, fmt.Sprintf(format, a...))
		}
		fmt.Fprintf(s.out, "check %-4s "+format+"\n", append([]any{verdict}, a...)...)
	}
	check(st.summaries > 0 && st.minConnected == s.o.gateways,
		"gateways connected: at least %d of %d in all %d sim summaries of the soak", st.minConnected, s.o.gateways, st.summaries)
	check(stored >= minStoredShare*offered,
		"telemetry stored: %.1f messages/s over the soak, offered %.1f (at least %.0f%%)", stored, offered, 100*minStoredShare)
	check(flat == 0, "telemetry stored: the count rose in every one-minute window of the soak (%d windows without)", flat)
	check(s.errors == 0, "samples read: %d of %d", n, n+s.errors)
	fmt.Fprintf(s.out, "\nCPU over the soak: server %.2f cores, sim %.2f cores\n",
		s.srvCPU.Seconds()/secs, s.simCPU.Seconds()/secs)
	return failures
}
