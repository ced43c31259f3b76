// Command ocsp benchmarks OCSP answers: gwpki's responder (/ocsp on the plain
// HTTP listener, pre-signed cached answers) against `openssl ocsp` as a
// responder (which signs every answer), one after the other on this
// machine, for the same certificates and the same statuses.
//
// It builds and initialises gwpki, issues -certs birth certificates through
// step-ca's JWK-token flow, revokes -revoked-pct of them through the
// operators' API (gwpki login, gwpki revoke), and gives openssl the same
// data: an index.txt and a delegated responder certificate from the same
// issuing CA. For each server it precomputes one RFC 5019 GET per
// certificate, runs an untimed warm-up, then times -n (-n-openssl) requests,
// the certificates round-robin, sent by -c workers each on one connection
// (kept alive when the server allows it) with a minimal HTTP/1.1 client, and
// fully verifies a sample of the answers after the timed window. It prints
// responses per second, p50, p99 and max latency, and CPU use, and writes
// them to bench/results/ocsp-<date>.json.
//
// Usage, from the repository root (or `make bench-ocsp`):
//
//	go run ./bench/ocsp [-n 200000] [-n-openssl 20000] [-c 64] [-certs 1000] [-gwpki BIN]
//
// See bench/ocsp/README.md and docs/benchmarks.md.
package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
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
		fmt.Fprintf(os.Stderr, "ocsp: %v\n", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	n              int
	nOpenSSL       int
	c              int
	certs          int
	revokedPct     float64
	warmup         int
	gwpkiBin       string
	opensslBin     string
	opensslWorkers int
	servers        []string
	outDir         string
	workDir        string
	keep           bool
	cpuProfile     string
	clientProfile  string
}

const (
	serverGwpki   = "gwpki"
	serverOpenSSL = "openssl"
)

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("ocsp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	servers := fs.String("servers", serverGwpki+","+serverOpenSSL,
		"servers to benchmark, comma-separated: gwpki, openssl (gwpki always issues the certificates)")
	fs.IntVar(&o.n, "n", 200000, "timed requests to gwpki")
	fs.IntVar(&o.nOpenSSL, "n-openssl", 20000, "timed requests to openssl ocsp")
	fs.IntVar(&o.c, "c", 64, "concurrent workers, one connection each")
	fs.IntVar(&o.certs, "certs", 1000, "birth certificates to issue and ask about, round-robin")
	fs.Float64Var(&o.revokedPct, "revoked-pct", 1, "percentage of the certificates revoked before the runs")
	fs.IntVar(&o.warmup, "warmup", 5000, "untimed warm-up requests per server (at least -certs fills gwpki's cache)")
	fs.StringVar(&o.gwpkiBin, "gwpki", "", "gwpki binary (default: build ./cmd/gwpki into the work directory)")
	fs.StringVar(&o.opensslBin, "openssl", "", "openssl binary (default: openssl on PATH)")
	fs.IntVar(&o.opensslWorkers, "openssl-multi", 2, "openssl ocsp -multi: responder processes")
	fs.StringVar(&o.outDir, "out", "", "directory for the results file (default: bench/results in the repository)")
	fs.StringVar(&o.workDir, "workdir", "", "parent of the work directory (default: the system's temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (CA material, index.txt, server logs)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "have gwpki serve write a CPU profile of its whole run here (GWPKI_CPUPROFILE)")
	fs.StringVar(&o.clientProfile, "client-cpuprofile", "", "write CPU profiles of this client's timed runs to FILE.<server>")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench/ocsp [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.n < 1 || o.nOpenSSL < 1 || o.c < 1 || o.certs < 1 || o.warmup < 0 || o.opensslWorkers < 1 {
		return nil, errors.New("-n, -n-openssl, -c, -certs and -openssl-multi must be at least 1, -warmup at least 0")
	}
	if o.revokedPct < 0 || o.revokedPct > 100 {
		return nil, errors.New("-revoked-pct must be between 0 and 100")
	}
	for _, s := range strings.Split(*servers, ",") {
		switch s = strings.TrimSpace(s); s {
		case serverGwpki, serverOpenSSL:
			if !slices.Contains(o.servers, s) {
				o.servers = append(o.servers, s)
			}
		case "":
		default:
			return nil, fmt.Errorf("unknown server %q in -servers (want gwpki, openssl)", s)
		}
	}
	if len(o.servers) == 0 {
		return nil, errors.New("-servers names no server")
	}
	// gwpki first, then openssl: the order of the report, whatever the flag's.
	slices.Sort(o.servers)
	if o.cpuProfile != "" {
		p, err := filepath.Abs(o.cpuProfile)
		if err != nil {
			return nil, err
		}
		o.cpuProfile = p
	}
	return o, nil
}

// revokedIndexes spreads round(pct% of n) revocations evenly over n
// certificates.
func revokedIndexes(n int, pct float64) []int {
	k := int(float64(n)*pct/100 + 0.5)
	idx := make([]int, 0, k)
	for j := range k {
		idx = append(idx, (2*j+1)*n/(2*k))
	}
	return idx
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "ocsp: "+format+"\n", a...) }

	root, rootErr := harness.ModuleRoot()
	if o.outDir == "" {
		if rootErr != nil {
			return fmt.Errorf("find the results directory: %w (give -out)", rootErr)
		}
		o.outDir = filepath.Join(root, "bench", "results")
	}
	build := "unknown"
	if rootErr == nil {
		if out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output(); err == nil {
			build = strings.TrimSpace(string(out))
		}
	}
	var opensslBin string
	if slices.Contains(o.servers, serverOpenSSL) {
		if opensslBin, err = findOpenSSL(o.opensslBin); err != nil {
			return err
		}
	}

	work, err := os.MkdirTemp(o.workDir, "gwpki-bench-ocsp-")
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
		if gwpkiBin, err = harness.BuildGwpki(ctx, root, filepath.Join(work, "bin")); err != nil {
			return err
		}
	}
	logf("gwpki init and station add in %s", dataDir)
	if err := initGwpki(ctx, gwpkiBin, dataDir, work); err != nil {
		return err
	}
	rootCert, err := readCert(filepath.Join(dataDir, "certs", "root_ca.crt"))
	if err != nil {
		return err
	}
	issuerPath := filepath.Join(dataDir, "certs", "intermediate_ca.crt")
	issuer, err := readCert(issuerPath)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(rootCert)

	var env []string
	if o.cpuProfile != "" && slices.Contains(o.servers, serverGwpki) {
		env = append(env, "GWPKI_CPUPROFILE="+o.cpuProfile)
	}
	logf("starting gwpki serve")
	gw, ready, err := startGwpki(ctx, gwpkiBin, dataDir, work, env)
	if err != nil {
		return err
	}
	defer gw.stop()
	if err := waitHealthy(ctx, gw, ready.HTTPURL); err != nil {
		return err
	}

	logf("issuing %d birth certificates", o.certs)
	certs, err := issueCerts(ctx, ready.APIURL, filepath.Join(dataDir, "station.json"), roots, o.certs, 8)
	if err != nil {
		return fmt.Errorf("%w (server log: %s)", err, gw.logPath)
	}
	revoke := revokedIndexes(len(certs), o.revokedPct)
	logf("revoking %d of them (gwpki login, gwpki revoke)", len(revoke))
	if err := revokeGateways(ctx, gwpkiBin, ready.APIURL, dataDir, work, certs, revoke); err != nil {
		return err
	}
	ders, err := ocspRequests(certs, issuer)
	if err != nil {
		return err
	}

	rep := newReport(o, build)
	rep.Revoked = len(revoke)
	for _, name := range o.servers {
		if err := ctx.Err(); err != nil {
			return err
		}
		var srv *server
		var reqs [][]byte
		n := o.n
		switch name {
		case serverGwpki:
			srv = gw
			reqs = getRequests(ders, "/ocsp", gw.addr)
		case serverOpenSSL:
			// The CPU to itself: gwpki is done.
			if err := gw.stop(); err != nil {
				logf("gwpki: %v", err)
			}
			logf("writing openssl's index.txt and responder certificate")
			files, err := writeOpenSSLFiles(filepath.Join(work, "openssl"), issuerPath,
				filepath.Join(dataDir, "secrets", "intermediate_ca_key"), filepath.Join(dataDir, "secrets", "password"),
				issuer, certs)
			if err != nil {
				return err
			}
			logf("starting openssl ocsp -multi %d", o.opensslWorkers)
			if srv, err = startOpenSSL(ctx, opensslBin, files, o.opensslWorkers, work); err != nil {
				return err
			}
			defer srv.stop()
			reqs = getRequests(ders, "", srv.addr)
			n = o.nOpenSSL
		}
		if err := srv.waitReady(ctx, reqs[0]); err != nil {
			return err
		}
		res, err := benchServer(ctx, srv, reqs, n, certs, issuer, o, logf)
		if stopErr := srv.stop(); stopErr != nil && err == nil {
			logf("%s: %v", srv.name, stopErr)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", srv.name, err)
		}
		rep.Results = append(rep.Results, res)
	}
	if o.cpuProfile != "" && slices.Contains(o.servers, serverGwpki) {
		logf("gwpki CPU profile: %s (go tool pprof -top %s %s)", o.cpuProfile, gwpkiBin, o.cpuProfile)
	}
	rep.finish()

	rep.print(stdout)
	path, err := rep.write(o.outDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "results: %s\n", path)
	for _, r := range rep.Results {
		if r.Errors > 0 || r.BadAnswers > 0 {
			return fmt.Errorf("%s: %d of %d requests failed, %d of %d checked answers were wrong",
				r.Server, r.Errors, r.Requests, r.BadAnswers, r.Checked)
		}
	}
	return nil
}

// benchServer runs the warm-up and the timed run against a ready server and
// checks a sample of the answers.
func benchServer(ctx context.Context, srv *server, reqs [][]byte, n int, certs []*issued, issuer *x509.Certificate,
	o *options, logf func(string, ...any)) (*result, error) {
	conns := make([]*rawConn, o.c)
	for i := range conns {
		conns[i] = newRawConn(srv.addr, requestTimeout)
	}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()

	if o.warmup > 0 {
		logf("%s: warm-up, %d requests", srv.name, o.warmup)
		w := runLoad(ctx, conns, reqs, o.warmup, 0)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if w.errors > 0 {
			return nil, fmt.Errorf("warm-up: %d of %d requests failed; first: %v (server log: %s)",
				w.errors, o.warmup, w.firstErr, srv.logPath)
		}
	}

	sample := min(n, 2*len(certs))
	logf("%s: timed run, %d requests, %d connections", srv.name, n, o.c)
	load := harness.LoadAvg()
	cpu0, cpuErr := srv.cpuTime()
	self0 := selfCPUTime()
	busy0, busyErr := machineBusyTime()
	stopProfile, err := startClientProfile(o.clientProfile, srv.name)
	if err != nil {
		return nil, err
	}
	l := runLoad(ctx, conns, reqs, n, sample)
	stopProfile()
	cpu1, cpuErr1 := srv.cpuTime()
	self1 := selfCPUTime()
	busy1, busyErr1 := machineBusyTime()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if l.errors > 0 {
		logf("%s: %d of %d requests failed; first: %v (server log: %s)", srv.name, l.errors, n, l.firstErr, srv.logPath)
	}
	bad := checkAnswers(l.samples, certs, issuer, time.Now())
	if bad.count > 0 {
		logf("%s: %d of %d checked answers are wrong; first: %v", srv.name, bad.count, len(l.samples), bad.first)
	}

	res := newResult(srv, l)
	res.Checked = len(l.samples)
	res.BadAnswers = bad.count
	res.LoadAvg = load
	wall := l.wall.Seconds()
	if cpuErr == nil && cpuErr1 == nil {
		res.ServerCPUCores = (cpu1 - cpu0).Seconds() / wall
		if ok := res.Requests - res.Errors; ok > 0 {
			res.ServerCPUPerRespUS = float64((cpu1-cpu0)/time.Microsecond) / float64(ok)
		}
	}
	res.ClientCPUCores = (self1 - self0).Seconds() / wall
	if busyErr == nil && busyErr1 == nil && res.ServerCPUCores > 0 {
		// What the rest of the machine used meanwhile: on a shared machine,
		// the CPU the server and the client did not get.
		res.OtherCPUCores = max(0, (busy1-busy0).Seconds()/wall-res.ServerCPUCores-res.ClientCPUCores)
	}
	logf("%s: %.0f responses/s, p50 %s, p99 %s, server %.2f cores, client %.2f, others %.2f",
		srv.name, res.RespPerSec, fmtMS(res.P50MS), fmtMS(res.P99MS), res.ServerCPUCores, res.ClientCPUCores, res.OtherCPUCores)
	return res, nil
}

// startClientProfile starts a CPU profile of this program into
// path.<server>, when path is set; stop ends it.
func startClientProfile(path, server string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path + "." + server)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// readCert reads a PEM certificate file.
func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("read %s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return c, nil
}
