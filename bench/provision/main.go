// Command provision benchmarks provisioning a batch of gateways end to end:
// `gwpki provision` against the shell loop a user without gwpki writes
// around the step CLI, one after the other, in one run, against one
// `gwpki serve` on this machine.
//
// It builds and initialises gwpki (init, station add, serve), then times
// `gwpki provision` for -n gateways with labels off at each concurrency of
// -c, and again with PNG labels (-label) at the best of them; then a bash
// script that, for each of -n-shell serials, runs `step ca token` and
// `step ca certificate`, one gateway after the other. After the timed
// windows it checks every bundle, the manifests and the loop's certificates.
// It prints gateways per second for each, the CPU the server, the command
// and every other process used, the ratio gwpki/shell loop and issue 4's
// targets, and writes them to bench/results/provision-<date>.json.
//
// Usage, from the repository root (or `make bench-provision`):
//
//	go run ./bench/provision [-n 10000] [-n-shell 100] [-c 128] [-label png] [-gwpki BIN] [-step BIN]
//
// See bench/provision/README.md and docs/benchmarks.md.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "provision: %v\n", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	n          int
	nShell     int
	conc       []int
	warmup     int
	model      string
	label      string // "" for no labels run
	gwpkiBin   string
	stepBin    string
	outDir     string
	workDir    string
	keep       bool
	cpuProfile string
	fsWait     time.Duration
}

// defaultConcurrency is -c's default: the fastest of 16, 32, 64, 128 and
// 256 on the 2-core machine of docs/benchmarks.md.
const defaultConcurrency = "128"

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	conc := fs.String("c", defaultConcurrency,
		"gwpki provision --concurrency; a comma-separated list (16,32,64) times one batch each, and the labels run uses the fastest")
	fs.IntVar(&o.n, "n", 10000, "gateways per gwpki provision batch")
	fs.IntVar(&o.nShell, "n-shell", 100, "gateways provisioned by the shell loop (0: skip it)")
	fs.IntVar(&o.warmup, "warmup", 200, "gateways of an untimed gwpki provision batch before the timed ones (0: none)")
	fs.StringVar(&o.model, "model", "M1", "gwpki provision --model")
	fs.StringVar(&o.label, "label", "png", "label format of the second gwpki batch: png, zpl, svg, or none to skip it")
	fs.StringVar(&o.gwpkiBin, "gwpki", "", "gwpki binary (default: build ./cmd/gwpki into the work directory)")
	fs.StringVar(&o.stepBin, "step", "", "step CLI binary (default: step on PATH, then in $(go env GOPATH)/bin)")
	fs.StringVar(&o.outDir, "out", "", "directory for the results file (default: bench/results in the repository)")
	fs.StringVar(&o.workDir, "workdir", "", "parent of the work directory, on the disk to measure (default: the system's temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (CA material, bundles, script, logs)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "have gwpki serve write a CPU profile of its whole run here (GWPKI_CPUPROFILE)")
	fs.DurationVar(&o.fsWait, "fs-wait", 6*time.Minute,
		"before each timed command, wait up to this long for file creation to cost at most 50µs of CPU (0: measure only)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench/provision [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.n < 1 || o.nShell < 0 || o.warmup < 0 || o.fsWait < 0 {
		return nil, errors.New("-n must be at least 1, -n-shell, -warmup and -fs-wait at least 0")
	}
	var err error
	if o.conc, err = parseConcurrency(*conc); err != nil {
		return nil, err
	}
	// Batches are numbered from --start: every serial must keep 6 digits.
	if (len(o.conc)+1)*o.n > 999999 || o.nShell > 999999 {
		return nil, errors.New("-n is too large for 6-digit serial numbers")
	}
	switch o.label {
	case "png", "zpl", "svg":
	case "none", "":
		o.label = ""
	default:
		return nil, fmt.Errorf("-label %q: want png, zpl, svg or none", o.label)
	}
	if o.cpuProfile != "" {
		if o.cpuProfile, err = filepath.Abs(o.cpuProfile); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// parseConcurrency reads -c: one or more positive integers, comma-separated,
// each at most once.
func parseConcurrency(s string) ([]int, error) {
	var cs []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		c, err := strconv.Atoi(f)
		if err != nil || c < 1 {
			return nil, fmt.Errorf("-c %q: %q is not a positive integer", s, f)
		}
		if !slices.Contains(cs, c) {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return nil, errors.New("-c names no concurrency")
	}
	return cs, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "provision: "+format+"\n", a...) }

	root, rootErr := harness.ModuleRoot()
	if o.outDir == "" {
		if rootErr != nil {
			return fmt.Errorf("find the results directory: %w (give -out)", rootErr)
		}
		o.outDir = filepath.Join(root, "bench", "results")
	}
	build := "unknown"
	if rootErr == nil {
		build = gitDescribe(ctx, root)
	}
	var step *stepCLI
	if o.nShell > 0 {
		if step, err = findStep(ctx, o.stepBin); err != nil {
			return err
		}
	}

	work, err := os.MkdirTemp(o.workDir, "gwpki-bench-provision-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("work directory: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	dataDir := filepath.Join(work, "gwpki-data")

	gwpkiBin := o.gwpkiBin
	if gwpkiBin == "" {
		if rootErr != nil {
			return fmt.Errorf("find the gwpki source: %w (give -gwpki)", rootErr)
		}
		logf("building gwpki")
		if gwpkiBin, err = buildGwpki(ctx, root, filepath.Join(work, "bin"), build); err != nil {
			return err
		}
	}
	logf("gwpki init and station add in %s", dataDir)
	if err := initGwpki(ctx, gwpkiBin, dataDir, work); err != nil {
		return err
	}
	rootPath := filepath.Join(dataDir, "certs", "root_ca.crt")
	roots, err := loadRoots(rootPath)
	if err != nil {
		return err
	}

	var env []string
	if o.cpuProfile != "" {
		env = append(env, "GWPKI_CPUPROFILE="+o.cpuProfile)
	}
	logf("starting gwpki serve")
	srv, err := startGwpki(ctx, gwpkiBin, dataDir, work, env)
	if err != nil {
		return err
	}
	defer srv.stop()

	rep := newReport(o, build)
	rep.Server = srv.version
	g := &gwpkiRunner{bin: gwpkiBin, srv: srv, dataDir: dataDir, work: work, model: o.model}
	if o.warmup > 0 {
		logf("warm-up: gwpki provision, %d gateways (PW-), untimed", o.warmup)
		if _, err := g.provision(ctx, batch{prefix: "PW-", start: 1, count: o.warmup, conc: o.conc[0], out: "out-warmup"}); err != nil {
			return err
		}
	}

	// Each timed command starts once creating a file is cheap again (see
	// fsprobe.go), and records what it cost.
	probe := &fsProbe{dir: filepath.Join(work, "fsprobe")}
	timed := func(run func() (*result, error)) (*result, error) {
		c, err := probe.wait(ctx, o.fsWait, logf)
		if err != nil {
			return nil, err
		}
		res, err := run()
		if err != nil {
			return nil, err
		}
		res.CreateUS = float64(c) / float64(time.Microsecond)
		return res, nil
	}

	var batches []batch
	var results []*result
	for i, c := range o.conc {
		b := batch{prefix: "PB-", start: 1 + i*o.n, count: o.n, conc: c, out: fmt.Sprintf("out-c%d", c)}
		logf("gwpki provision: %d gateways (PB-%06d...), --concurrency %d, no labels", b.count, b.start, c)
		res, err := timed(func() (*result, error) { return g.provision(ctx, b) })
		if err != nil {
			return err
		}
		logf("  %.0f gateways/s (its own summary: %.0f/s), server %.2f cores, provision %.2f, others %.2f",
			res.GatewaysPerSec, res.OwnPerSec, res.ServerCPUCores, res.ClientCPUCores, res.OtherCPUCores)
		batches, results = append(batches, b), append(results, res)
	}
	best := bestRate(results)
	if o.label != "" {
		b := batch{prefix: "PL-", start: 1, count: o.n, conc: o.conc[best], label: o.label, out: "out-" + o.label}
		logf("gwpki provision: %d gateways (PL-), --concurrency %d, --label %s", b.count, b.conc, b.label)
		res, err := timed(func() (*result, error) { return g.provision(ctx, b) })
		if err != nil {
			return err
		}
		logf("  %.0f gateways/s (its own summary: %.0f/s), server %.2f cores, provision %.2f, others %.2f",
			res.GatewaysPerSec, res.OwnPerSec, res.ServerCPUCores, res.ClientCPUCores, res.OtherCPUCores)
		batches, results = append(batches, b), append(results, res)
	}
	var shellBatch batch
	if o.nShell > 0 {
		shellBatch = batch{prefix: "PS-", start: 1, count: o.nShell, out: "out-shell"}
		logf("shell loop: step ca token + step ca certificate, %d gateways (PS-), one at a time", o.nShell)
		res, err := timed(func() (*result, error) { return runShellLoop(ctx, step, srv, dataDir, work, shellBatch) })
		if err != nil {
			return err
		}
		logf("  %.1f gateways/s, server %.2f cores, loop %.2f, others %.2f",
			res.GatewaysPerSec, res.ServerCPUCores, res.ClientCPUCores, res.OtherCPUCores)
		results = append(results, res)
	}
	if err := srv.stop(); err != nil {
		logf("%v", err)
	}

	logf("checking the bundles, manifests and certificates")
	for i, b := range batches {
		bad := verifyBundles(filepath.Join(work, b.out), b.serials(), b.label, roots)
		results[i].Checked, results[i].Bad = b.count, bad.count
		if bad.count > 0 {
			logf("%s: %d of %d gateways are wrong; first: %v", results[i].Name, bad.count, b.count, bad.first)
		}
	}
	if o.nShell > 0 {
		bad := verifyShell(filepath.Join(work, shellBatch.out), shellBatch.serials(), roots)
		r := results[len(results)-1]
		r.Checked, r.Bad = shellBatch.count, bad.count
		if bad.count > 0 {
			logf("%s: %d of %d certificates are wrong; first: %v", r.Name, bad.count, shellBatch.count, bad.first)
		}
	}

	rep.Results = results
	rep.finish(best)
	rep.print(stdout)
	path, err := rep.write(o.outDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "results: %s\n", path)
	if o.cpuProfile != "" {
		fmt.Fprintf(stdout, "server CPU profile: %s (go tool pprof -top %s %s)\n", o.cpuProfile, gwpkiBin, o.cpuProfile)
	}
	for _, r := range results {
		if r.Bad > 0 {
			return fmt.Errorf("%s: %d of %d gateways failed the checks", r.Name, r.Bad, r.Checked)
		}
	}
	return nil
}

// bestRate returns the index of the highest gateways/s in results.
func bestRate(results []*result) int {
	best := 0
	for i, r := range results {
		if r.GatewaysPerSec > results[best].GatewaysPerSec {
			best = i
		}
	}
	return best
}

// loadRoots reads the root certificate into a pool.
func loadRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("read %s: no PEM certificate", path)
	}
	return pool, nil
}
