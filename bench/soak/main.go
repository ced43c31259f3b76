// Command soak runs gwpki under a steady gateway load for a while and
// checks that the server does not leak: goroutines, heap and resident
// memory must stay flat once the fleet is online.
//
// It builds gwpki (or takes -gwpki), inits a data directory in a temporary
// work directory, starts `gwpki serve` on loopback ports, adds a station,
// provisions -gateways gateways with `gwpki provision`, and starts
// `gwpki gateway sim` for all of them: each bootstraps, connects to the
// broker over mutual TLS and publishes a QoS 1 pump reading every
// -interval. Once every gateway is connected (the sim's summary line) and
// -warmup more has passed (sampled, shown, not judged), it samples the server's /metrics (go_goroutines,
// go_memstats_heap_inuse_bytes, go_memstats_next_gc_bytes,
// process_resident_memory_bytes, the telemetry store's message count) and
// the sim's resident memory every -every for -duration.
//
// The verdict per metric compares the median of the first fifth of the
// samples with the median of the last fifth (see judge and README.md for the
// limits). It also checks that every gateway stayed connected and that the
// server kept storing telemetry at the offered rate. It exits 1 on growth
// or a failed check, and stops both processes and removes the work
// directory in any case.
//
// Usage, from the repository root (or `make soak SOAKFLAGS=...`):
//
//	go run ./bench/soak [-gateways 2000] [-interval 5s] [-duration 10m] [-warmup 1m] [-every 5s]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"
	"github.com/gwpki/gwpki/bench/internal/proc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	gateways                                   int
	interval, duration, warmup, every, stagger time.Duration
	gwpkiBin, workDir                          string
	keep                                       bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.IntVar(&o.gateways, "gateways", 2000, "gateways provisioned and run by one gwpki gateway sim")
	fs.DurationVar(&o.interval, "interval", 5*time.Second, "each gateway's telemetry interval (2,000 at 5s: 400 messages/s)")
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "the soak: sampled and judged time, after the warm-up")
	fs.DurationVar(&o.warmup, "warmup", time.Minute, "time under load, every gateway connected, before the judged samples")
	fs.DurationVar(&o.every, "every", 5*time.Second, "time between two samples")
	fs.DurationVar(&o.stagger, "stagger", 20*time.Millisecond, "the sim's time between two gateways' starts")
	fs.StringVar(&o.gwpkiBin, "gwpki", "", "gwpki binary (default: build ./cmd/gwpki into the work directory)")
	fs.StringVar(&o.workDir, "workdir", "", "parent of the work directory (default: the system's temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (data directory, bundles, logs)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench/soak [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	case o.gateways < 1 || o.gateways > 999999:
		return nil, errors.New("-gateways must be from 1 to 999999")
	case o.interval <= 0 || o.every <= 0 || o.warmup < 0 || o.stagger < 0:
		return nil, errors.New("-interval and -every must be positive, -warmup and -stagger not negative")
	case o.duration < 10*o.every:
		return nil, errors.New("-duration must hold at least 10 samples (-every)")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "soak %s: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}
	root, rootErr := harness.ModuleRoot()
	work, err := os.MkdirTemp(o.workDir, "gwpki-soak-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("work directory: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	bin := o.gwpkiBin
	if bin == "" {
		if rootErr != nil {
			return fmt.Errorf("find the gwpki source: %w (give -gwpki)", rootErr)
		}
		logf("building gwpki")
		if bin, err = harness.BuildGwpki(ctx, root, filepath.Join(work, "bin")); err != nil {
			return err
		}
	}
	version := "unknown"
	if out, err := exec.CommandContext(ctx, bin, "--version").Output(); err == nil {
		version = strings.TrimSpace(string(out))
	}

	dataDir := filepath.Join(work, "gwpki-data")
	logf("gwpki init and station add in %s", dataDir)
	if err := initData(ctx, bin, dataDir, work); err != nil {
		return err
	}
	logf("starting gwpki serve")
	srv, err := startServer(ctx, bin, dataDir, work)
	if err != nil {
		return err
	}
	defer stopLogged(srv.Process, logf)

	logf("provisioning %d gateways (gwpki provision)", o.gateways)
	t0 := time.Now()
	bundles := filepath.Join(work, "bundles")
	if err := provision(ctx, bin, srv.apiURL, dataDir, bundles, work, o.gateways); err != nil {
		return err
	}
	logf("  done in %.1fs", time.Since(t0).Seconds())

	logf("starting gwpki gateway sim: %d gateways, telemetry every %s (%.0f messages/s), one started every %s",
		o.gateways, o.interval, float64(o.gateways)/o.interval.Seconds(), o.stagger)
	watch := &simWatcher{}
	sim, err := harness.StartProcess("gwpki gateway sim", bin, filepath.Join(work, "gwpki-sim.log"), nil, watch,
		"gateway", "sim", "--bundles", bundles, "--interval", o.interval.String(),
		"--stagger", o.stagger.String(), "--summary-every", "5s")
	if err != nil {
		return err
	}
	// Deferred after the server's stop, so it runs first: the gateways say
	// offline to a live broker.
	defer stopLogged(sim, logf)

	t0 = time.Now()
	rampLimit := time.Duration(o.gateways)*o.stagger + 3*time.Minute
	if err := waitConnected(ctx, watch, o.gateways, rampLimit, srv.Process, sim); err != nil {
		return err
	}
	logf("all %d gateways connected %.0fs after the sim started; sampling every %s: %s of warm-up (not judged), then %s",
		o.gateways, time.Since(t0).Seconds(), o.every, o.warmup, o.duration)
	s := &soak{o: o, srv: srv, sim: sim, watch: watch, out: stdout}
	if err := s.sample(ctx); err != nil {
		return err
	}
	failures := s.report(version)
	if len(failures) > 0 {
		return fmt.Errorf("FAIL: %s (logs in %s with -keep)", strings.Join(failures, "; "), work)
	}
	fmt.Fprintln(stdout, "PASS")
	return nil
}

func stopLogged(p *harness.Process, logf func(string, ...any)) {
	if err := p.Stop(30 * time.Second); err != nil {
		logf("%v", err)
	}
}

// sleep waits d, failing early if either process ends.
func sleep(ctx context.Context, d time.Duration, procs ...*harness.Process) error {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if err := alive(procs...); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Second, time.Until(end))):
		}
	}
	return alive(procs...)
}

func alive(procs ...*harness.Process) error {
	for _, p := range procs {
		if p.Exited() {
			return p.Failure("exited")
		}
	}
	return nil
}

// waitConnected waits until the sim's summary says n gateways are connected.
func waitConnected(ctx context.Context, w *simWatcher, n int, timeout time.Duration, procs ...*harness.Process) error {
	deadline := time.Now().Add(timeout)
	for {
		st := w.get()
		if st.connected == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d gateways connected after %s; last sim summary: %q", st.connected, n, timeout, st.line)
		}
		if err := sleep(ctx, time.Second, procs...); err != nil {
			return err
		}
	}
}

// cpu is the CPU time of a process, zero if it cannot be read.
func cpu(p *harness.Process) time.Duration {
	d, _ := proc.ProcessCPUTime(p.PID())
	return d
}
