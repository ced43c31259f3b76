// Command issuance benchmarks certificate issuance through step-ca's JWK-token
// flow (POST /1.0/sign with a one-time token and a fresh P-256 CSR), against
// gwpki and against stock step-ca, one after the other on this machine, with
// the same CA material and the same station key.
//
// For each server it starts the server, prepares the CSRs and tokens, runs a
// short warm-up, then times -n requests sent by -c workers over keep-alive
// HTTPS connections, checks every answer, and stops the server. It prints
// certificates per second, p50 and p99 latency for each server and the ratio
// gwpki/step-ca, and writes them to bench/results/issuance-<date>.json.
//
// Usage, from the repository root (or `make bench`):
//
//	go run ./bench/issuance [-n 10000] [-c 32] [-gwpki BIN] [-stepca BIN]
//
// See bench/issuance/README.md and docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/gwpki/gwpki/bench/internal/harness"

	"github.com/gwpki/gwpki/bench/internal/proc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "issuance: %v\n", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	n         int
	c         int
	warmup    int
	gwpkiBin  string
	stepcaBin string
	servers   []string
	outDir    string
	workDir   string
	keep      bool
}

const (
	serverGwpki  = "gwpki"
	serverStepCA = "step-ca"
)

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("issuance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	servers := fs.String("servers", serverGwpki+","+serverStepCA,
		"servers to benchmark, comma-separated, in this order: gwpki, step-ca")
	fs.IntVar(&o.n, "n", 10000, "timed requests per server")
	fs.IntVar(&o.c, "c", 32, "concurrent workers (one keep-alive connection each)")
	fs.IntVar(&o.warmup, "warmup", 200, "untimed warm-up requests per server")
	fs.StringVar(&o.gwpkiBin, "gwpki", "", "gwpki binary (default: build ./cmd/gwpki into a temporary directory)")
	fs.StringVar(&o.stepcaBin, "stepca", "", "step-ca binary (default: step-ca on PATH, then in $(go env GOPATH)/bin)")
	fs.StringVar(&o.outDir, "out", "", "directory for the results file (default: bench/results in the repository)")
	fs.StringVar(&o.workDir, "workdir", "", "parent of the work directory, on the disk to measure (default: the system's temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (CA material, server logs and databases)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench/issuance [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.n < 1 || o.c < 1 || o.warmup < 0 {
		return nil, errors.New("-n and -c must be at least 1 and -warmup at least 0")
	}
	for _, s := range strings.Split(*servers, ",") {
		switch s = strings.TrimSpace(s); s {
		case serverGwpki, serverStepCA:
			if !slices.Contains(o.servers, s) {
				o.servers = append(o.servers, s)
			}
		case "stepca":
			if !slices.Contains(o.servers, serverStepCA) {
				o.servers = append(o.servers, serverStepCA)
			}
		case "":
		default:
			return nil, fmt.Errorf("unknown server %q in -servers (want gwpki, step-ca)", s)
		}
	}
	if len(o.servers) == 0 {
		return nil, errors.New("-servers names no server")
	}
	// gwpki first, then step-ca: the order of the report, whatever the flag's.
	slices.Sort(o.servers)
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
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "issuance: "+format+"\n", a...) }

	root, rootErr := harness.ModuleRoot()
	if o.outDir == "" {
		if rootErr != nil {
			return fmt.Errorf("find the results directory: %w (give -out)", rootErr)
		}
		o.outDir = filepath.Join(root, "bench", "results")
	}

	work, err := os.MkdirTemp(o.workDir, "gwpki-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("work directory: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	dataDir := filepath.Join(work, "gwpki-data")

	// The CA material: gwpki's own (gwpki init + station add) when gwpki is
	// benchmarked, otherwise the same layout made here.
	var gwpkiBin string
	if slices.Contains(o.servers, serverGwpki) {
		gwpkiBin = o.gwpkiBin
		if gwpkiBin == "" {
			if rootErr != nil {
				return fmt.Errorf("find the gwpki source: %w (give -gwpki)", rootErr)
			}
			logf("building gwpki")
			if gwpkiBin, err = harness.BuildGwpki(ctx, root, filepath.Join(work, "bin")); err != nil {
				return err
			}
		}
		logf("gwpki init and station add in %s", dataDir)
		if err := initGwpki(ctx, gwpkiBin, dataDir, work); err != nil {
			return err
		}
	} else {
		logf("creating CA material in %s", dataDir)
		if err := createCAMaterial(ctx, dataDir); err != nil {
			return err
		}
	}
	ca, err := loadCAMaterial(dataDir)
	if err != nil {
		return err
	}

	var stepcaBin string
	if slices.Contains(o.servers, serverStepCA) {
		if stepcaBin, err = findStepCA(o.stepcaBin); err != nil {
			return err
		}
	}

	rep := newReport(o)
	for _, name := range o.servers {
		if err := ctx.Err(); err != nil {
			return err
		}
		var srv *server
		switch name {
		case serverGwpki:
			logf("starting gwpki serve")
			srv, err = startGwpki(ctx, gwpkiBin, dataDir, work)
		case serverStepCA:
			logf("starting step-ca")
			srv, err = startStepCA(ctx, stepcaBin, ca, work)
		}
		if err != nil {
			return err
		}
		if err := srv.waitHealthy(ctx, healthClient(ca)); err != nil {
			srv.stop()
			return err
		}
		res, err := benchServer(ctx, srv, ca, o, logf)
		if stopErr := srv.stop(); stopErr != nil && err == nil {
			logf("%s: %v", srv.name, stopErr)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", srv.name, err)
		}
		rep.Results = append(rep.Results, res)
	}
	rep.finish()

	rep.print(stdout)
	path, err := rep.write(o.outDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "results: %s\n", path)
	for _, r := range rep.Results {
		if r.Errors > 0 {
			return fmt.Errorf("%s answered %d of %d requests with an error", r.Server, r.Errors, r.Requests)
		}
	}
	return nil
}

// benchServer runs the warm-up and the timed run against a started server.
func benchServer(ctx context.Context, srv *server, ca *caMaterial, o *options, logf func(string, ...any)) (*result, error) {
	signURL := srv.url + "/1.0/sign"
	logf("%s: preparing %d CSRs and tokens", srv.name, o.warmup+o.n)
	jobs, err := prepareJobs(ctx, o.warmup+o.n, signURL, ca)
	if err != nil {
		return nil, err
	}
	warm, timed := jobs[:o.warmup], jobs[o.warmup:]

	client, err := newClient(signURL, ca.rootPool, o.c)
	if err != nil {
		return nil, err
	}
	defer client.close()

	if len(warm) > 0 {
		logf("%s: warm-up, %d requests", srv.name, len(warm))
		w := runLoad(ctx, client, warm, o.c)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if bad := w.check(ca); bad.count > 0 {
			return nil, fmt.Errorf("warm-up: %d of %d requests failed; first: %v (server log: %s)",
				bad.count, len(warm), bad.first, srv.logPath)
		}
	}

	logf("%s: timed run, %d requests, %d workers", srv.name, len(timed), o.c)
	load := harness.LoadAvg()
	cpu0, cpuErr := srv.cpuTime()
	self0 := proc.SelfCPUTime()
	busy0, busyErr := proc.MachineBusyTime()
	l := runLoad(ctx, client, timed, o.c)
	cpu1, cpuErr1 := srv.cpuTime()
	self1 := proc.SelfCPUTime()
	busy1, busyErr1 := proc.MachineBusyTime()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bad := l.check(ca)
	if bad.count > 0 {
		logf("%s: %d of %d requests failed; first: %v (server log: %s)",
			srv.name, bad.count, len(timed), bad.first, srv.logPath)
	}
	res := newResult(srv, l, bad.count)
	res.LoadAvg = load
	if cpuErr == nil && cpuErr1 == nil {
		res.ServerCPUCores = (cpu1 - cpu0).Seconds() / l.wall.Seconds()
		if ok := res.Requests - res.Errors; ok > 0 {
			res.ServerCPUPerCertMS = ms(cpu1-cpu0) / float64(ok)
		}
	}
	res.ClientCPUCores = (self1 - self0).Seconds() / l.wall.Seconds()
	if busyErr == nil && busyErr1 == nil && res.ServerCPUCores > 0 {
		// What the rest of the machine used meanwhile: on a shared machine,
		// the CPU the servers did not get.
		res.OtherCPUCores = max(0, (busy1-busy0).Seconds()/l.wall.Seconds()-res.ServerCPUCores-res.ClientCPUCores)
	}
	logf("%s: %.0f certificates/s, p50 %s, p99 %s", srv.name, res.CertsPerSec,
		fmtMS(res.P50MS), fmtMS(res.P99MS))
	return res, nil
}
