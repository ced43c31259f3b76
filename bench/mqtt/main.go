// Command mqtt benchmarks gwpki's MQTT broker against Debian's mosquitto,
// one after the other in one run on this machine, with the same gateways
// (the same operational client certificates) and the same load generator.
//
// It builds and starts `gwpki serve` on loopback ports with a fresh data
// directory, adds a station, provisions -n gateways (provisioning.RunBatch,
// labels off) and bootstraps each (POST /v1/bootstrap with its birth
// certificate) to get its operational certificate and key, in memory. Then,
// for each broker:
//
//  1. connect storm: -conns connectors open -n mTLS MQTT connections as fast
//     as the broker takes them (handshake with the gateway's certificate,
//     CONNECT with client ID = serial, clean session, CONNACK accepted);
//     connects/s, p50 and p99 latency; every connection stays open, and the
//     broker's resident memory is read from /proc with all of them
//     connected;
//  2. QoS 1 telemetry: -publishers of those connections publish a ~200-byte
//     JSON pump reading to gw/<serial>/telemetry with -window unacknowledged
//     messages each, for -warmup then -duration; messages/s acknowledged and
//     PUBACK latency p50 and p99;
//  3. the same paced at -rate messages/s in all: the latency at that load
//     (unpaced, a full window of every publisher is always queued, and the
//     latency is window x publishers / messages/s).
//
// gwpki stores every message durably before its PUBACK; mosquitto, set up
// the way its users secure gateways (TLS with require_certificate and
// use_identity_as_username, an ACL by pattern, persistence false), stores
// nothing. After gwpki's run the harness counts, through the operators' API,
// what gwpki stored for a few gateways and checks it against the PUBACKs
// they received. It prints both, the ratios gwpki/mosquitto and issue 6's
// targets, and writes them to bench/results/mqtt-<date>.json.
//
// Usage, from the repository root (or `make bench-mqtt`):
//
//	go run ./bench/mqtt [-n 10000] [-conns 64] [-publishers 1000] [-window 8] [-duration 20s] [-only gwpki|mosquitto]
//
// See bench/mqtt/README.md and docs/benchmarks.md.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"
	"github.com/gwpki/gwpki/bench/internal/proc"
	"github.com/gwpki/gwpki/ca"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mqtt: %v\n", err)
		os.Exit(1)
	}
}

const (
	brokerGwpki     = "gwpki"
	brokerMosquitto = "mosquitto"
)

// options are the command-line flags.
type options struct {
	n, conns, publishers, window int
	rate                         float64
	duration, warmup             time.Duration
	bootstrapConc, verify        int
	only                         string
	gwpkiBin, mosquittoBin       string
	outDir, workDir              string
	keep                         bool
	stay                         bool
}

func (o *options) runs(broker string) bool { return o.only == "" || o.only == broker }

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("mqtt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.IntVar(&o.n, "n", 10000, "gateways: provisioned, bootstrapped, and connected at once in the connect storm")
	fs.IntVar(&o.conns, "conns", 64, "concurrent connectors in the connect storm")
	fs.IntVar(&o.publishers, "publishers", 1000, "connected gateways that publish in the QoS 1 phase (at most -n)")
	fs.BoolVar(&o.stay, "stay", false, "keep every storm connection open during the QoS 1 phases (default: only the -publishers stay connected, the issue's 1,000 connected gateways)")
	fs.IntVar(&o.window, "window", 8, "unacknowledged QoS 1 publishes per connection")
	fs.Float64Var(&o.rate, "rate", 10000, "messages/s the publishers offer together in a second, paced QoS 1 phase (0: skip it)")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured time of the QoS 1 phase")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured time of the QoS 1 phase before -duration")
	fs.IntVar(&o.bootstrapConc, "bootstrap-conc", 32, "bootstrap requests in flight during the setup")
	fs.IntVar(&o.verify, "verify", 5, "gateways whose stored telemetry is counted in gwpki after its run")
	fs.StringVar(&o.only, "only", "", "benchmark one broker only: gwpki or mosquitto")
	fs.StringVar(&o.gwpkiBin, "gwpki", "", "gwpki binary (default: build ./cmd/gwpki into the work directory)")
	fs.StringVar(&o.mosquittoBin, "mosquitto", "", "mosquitto broker (default: "+defaultMosquitto+", then mosquitto on PATH)")
	fs.StringVar(&o.outDir, "out", "", "directory for the results file (default: bench/results in the repository)")
	fs.StringVar(&o.workDir, "workdir", "", "parent of the work directory (default: the system's temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (CA material, bundles, configuration, logs)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench/mqtt [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	switch {
	case o.n < 1 || o.n > 999999:
		return nil, errors.New("-n must be from 1 to 999999")
	case o.conns < 1 || o.window < 1 || o.window > 65535 || o.bootstrapConc < 1:
		return nil, errors.New("-conns and -bootstrap-conc must be at least 1, -window from 1 to 65535")
	case o.publishers < 1 || o.publishers > o.n:
		return nil, errors.New("-publishers must be from 1 to -n")
	case o.duration <= 0 || o.warmup < 0 || o.verify < 0 || o.rate < 0:
		return nil, errors.New("-duration must be positive, -warmup, -verify and -rate at least 0")
	}
	switch o.only {
	case "", brokerGwpki, brokerMosquitto:
	default:
		return nil, fmt.Errorf("-only %q: want gwpki or mosquitto", o.only)
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
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "mqtt: "+format+"\n", a...) }

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
	var mosquittoBin string
	if o.runs(brokerMosquitto) {
		if mosquittoBin, err = findMosquitto(o.mosquittoBin); err != nil {
			return err
		}
	}
	if err := raiseFileLimit(o.n + 1024); err != nil {
		return err
	}

	work, err := os.MkdirTemp(o.workDir, "gwpki-bench-mqtt-")
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
	logf("starting gwpki serve")
	srv, err := startGwpki(ctx, gwpkiBin, dataDir, work, nil)
	if err != nil {
		return err
	}
	defer srv.stop()
	if o.runs(brokerGwpki) && srv.mqttURL == "" {
		return fmt.Errorf("gwpki serve (%s) wrote no mqtt_url in its ready file: this build has no MQTT broker\n"+
			"hint: -only mosquitto benchmarks mosquitto alone with gwpki's certificates", srv.version)
	}
	roots := x509.NewCertPool()
	gwpkiRoot, err := os.ReadFile(ca.Layout{Dir: dataDir}.RootCert())
	if err != nil {
		return err
	}
	roots.AppendCertsFromPEM(gwpkiRoot)

	logf("provisioning %d gateways (provisioning.RunBatch, labels off)", o.n)
	t0 := time.Now()
	serials, err := srv.provision(ctx, o.n, filepath.Join(work, "bundles"))
	if err != nil {
		return err
	}
	logf("  %.1fs; bootstrapping them (POST /v1/bootstrap, %d at a time)", time.Since(t0).Seconds(), o.bootstrapConc)
	t0 = time.Now()
	gws, err := srv.bootstrapAll(ctx, filepath.Join(work, "bundles"), serials, roots, o.bootstrapConc)
	if err != nil {
		return fmt.Errorf("%w (server log: %s)", err, srv.logPath)
	}
	logf("  %.1fs", time.Since(t0).Seconds())

	rep := newReport(o, build)
	if o.runs(brokerGwpki) {
		addr, err := srv.mqttAddr()
		if err != nil {
			return err
		}
		res, pubs, err := benchBroker(ctx, brokerGwpki, srv.version, srv.process, &dialer{addr: addr, roots: roots}, gws, o, logf)
		if err != nil {
			return fmt.Errorf("gwpki: %w (server log: %s)", err, srv.logPath)
		}
		res.Durability = "every message appended to the telemetry store (bbolt, group commit, fdatasync) before its PUBACK"
		if o.verify > 0 && pubs != nil {
			logf("gwpki: counting the stored telemetry of %d gateways", o.verify)
			if res.Verified, err = verifyStored(ctx, srv, roots, pubs, o.verify); err != nil {
				return fmt.Errorf("gwpki: verify the stored telemetry: %w", err)
			}
		}
		rep.Results = append(rep.Results, res)
	}
	if err := srv.stop(); err != nil {
		logf("%v", err)
	}

	if o.runs(brokerMosquitto) {
		port, err := harness.FreePort()
		if err != nil {
			return err
		}
		conf, serverCA, err := mosquittoFiles(filepath.Join(work, "mosquitto"), dataDir, port)
		if err != nil {
			return err
		}
		roots.AddCert(serverCA)
		logf("starting mosquitto (%s -c %s)", mosquittoBin, conf)
		mp, err := startMosquitto(ctx, mosquittoBin, conf, work, port)
		if err != nil {
			return err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		res, _, err := benchBroker(ctx, brokerMosquitto, mosquittoVersion(ctx, mosquittoBin), mp, &dialer{addr: addr, roots: roots}, gws, o, logf)
		if stopErr := mp.stop(); stopErr != nil {
			logf("%v", stopErr)
		}
		if err != nil {
			return fmt.Errorf("mosquitto: %w (log: %s)", err, filepath.Join(work, "mosquitto", "mosquitto.log"))
		}
		res.Durability = "nothing stored (persistence false): PUBACK once the message is routed in memory"
		rep.Results = append(rep.Results, res)
	}

	rep.finish()
	rep.print(stdout)
	path, err := rep.write(o.outDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "results: %s\n", path)
	for _, res := range rep.Results {
		pubErrs := res.Publish.Errors
		if res.Paced != nil {
			pubErrs += res.Paced.Errors
		}
		if res.Connect.Errors > 0 || pubErrs > 0 {
			return fmt.Errorf("%s: %d connect and %d publish errors", res.Broker, res.Connect.Errors, pubErrs)
		}
		for _, v := range res.Verified {
			if !v.OK {
				return fmt.Errorf("%s: gateway %s: %d messages stored, %d acknowledged, %d sent", res.Broker, v.Gateway, v.Stored, v.Acked, v.Published)
			}
		}
	}
	return nil
}

// cpuSample is the CPU times at one instant.
type cpuSample struct {
	at           time.Time
	server, self time.Duration
	busy         time.Duration
	ok           bool
}

func sampleCPU(p *process) cpuSample {
	s := cpuSample{at: time.Now(), self: proc.SelfCPUTime()}
	var err1, err2 error
	s.server, err1 = p.cpuTime()
	s.busy, err2 = proc.MachineBusyTime()
	s.ok = err1 == nil && err2 == nil
	return s
}

// cores returns the cores used between a and b by the server, this
// process and every other process.
func cores(a, b cpuSample) (server, client, others float64) {
	wall := b.at.Sub(a.at).Seconds()
	if !a.ok || !b.ok || wall <= 0 {
		return 0, 0, 0
	}
	server = (b.server - a.server).Seconds() / wall
	client = (b.self - a.self).Seconds() / wall
	others = max(0, (b.busy-a.busy).Seconds()/wall-server-client)
	return server, client, others
}

// benchBroker runs the connect storm and the QoS 1 phase against one
// broker and disconnects every gateway. It returns the publishers for the
// check of what was stored.
func benchBroker(ctx context.Context, name, version string, p *process, d *dialer, gws []*gateway, o *options,
	logf func(string, ...any)) (*result, []sentAcked, error) {
	res := &result{Broker: name, Version: version, Addr: d.addr}
	mem0, err := p.memory()
	if err != nil {
		return nil, nil, err
	}
	logf("%s: connect storm, %d gateways, %d connectors", name, len(gws), o.conns)
	c0 := sampleCPU(p)
	storm := connectStorm(ctx, d, gws, o.conns)
	c1 := sampleCPU(p)
	defer closeAll(storm.conns)
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	connected := len(storm.latencies)
	res.TLS = storm.tls
	res.Connect = connectResult{
		Gateways: len(gws), Connected: connected, Errors: storm.errors, Connectors: o.conns,
		WallSeconds: storm.wall.Seconds(), PerSec: float64(connected) / storm.wall.Seconds(),
		P50MS: ms(harness.Percentile(storm.latencies, 0.50)), P99MS: ms(harness.Percentile(storm.latencies, 0.99)),
		MaxMS: ms(harness.Percentile(storm.latencies, 1)),
	}
	if storm.firstErr != nil {
		res.Connect.FirstError = storm.firstErr.Error()
	}
	res.Connect.ServerCPUCores, res.Connect.ClientCPUCores, res.Connect.OtherCPUCores = cores(c0, c1)
	if connected > 0 {
		res.Connect.ServerCPUMS = ms(c1.server-c0.server) / float64(connected)
	}
	logf("%s: %d connected in %.1fs: %.0f connects/s, p50 %.1fms, p99 %.1fms, %d errors; CPU server %.2f, client %.2f",
		name, connected, storm.wall.Seconds(), res.Connect.PerSec, res.Connect.P50MS, res.Connect.P99MS, storm.errors,
		res.Connect.ServerCPUCores, res.Connect.ClientCPUCores)
	if storm.firstErr != nil {
		logf("%s: first connect error: %v", name, storm.firstErr)
	}

	// Let the broker settle (its garbage collector, buffers of the
	// handshakes) before reading what the connections cost.
	time.Sleep(2 * time.Second)
	if p.exited() {
		return nil, nil, p.failure("exited after the connect storm")
	}
	mem1, err := p.memory()
	if err != nil {
		return nil, nil, err
	}
	res.Memory = memoryResult{IdleMB: mb(mem0.RSS), ConnectedMB: mb(mem1.RSS), PeakMB: mb(mem1.Peak)}
	if connected > 0 {
		res.Memory.PerGatewayKB = float64(mem1.RSS-mem0.RSS) / 1024 / float64(connected)
	}
	logf("%s: RSS %.0f MB idle, %.0f MB with %d connected (%.1f KB each), peak %.0f MB",
		name, res.Memory.IdleMB, res.Memory.ConnectedMB, connected, res.Memory.PerGatewayKB, res.Memory.PeakMB)

	var pubConns []*mqttConn
	for _, c := range storm.conns {
		if c != nil && len(pubConns) < o.publishers {
			pubConns = append(pubConns, c)
		}
	}
	if len(pubConns) < o.publishers {
		return nil, nil, fmt.Errorf("only %d gateways connected; -publishers is %d", len(pubConns), o.publishers)
	}
	if !o.stay && connected > len(pubConns) {
		// The QoS 1 scenario is telemetry from -publishers connected
		// gateways: the rest of the storm's connections go, and the broker
		// gets a moment to let go of them.
		var rest []*mqttConn
		for _, c := range storm.conns {
			if c != nil && !slices.Contains(pubConns, c) {
				rest = append(rest, c)
			}
		}
		closeAll(rest)
		time.Sleep(2 * time.Second)
		logf("%s: %d gateways stay connected for the QoS 1 phases (-stay keeps all %d)", name, len(pubConns), connected)
	}
	res.QoSConnected = len(pubConns)
	if o.stay {
		res.QoSConnected = connected
	}
	var counts []sentAcked
	for _, rate := range []float64{0, o.rate} {
		if rate < 0 || (rate == 0 && counts != nil) {
			continue
		}
		sum, pubs := publishPhase(ctx, name, p, pubConns, o, rate, logf)
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if rate == 0 {
			res.Publish = sum
		} else {
			res.Paced = &sum
		}
		if counts == nil {
			counts = make([]sentAcked, len(pubs))
		}
		for i, pb := range pubs {
			counts[i].gw = pb.c.gw
			counts[i].sent += pb.seq
			counts[i].acked += pb.acks
		}
	}
	return res, counts, nil
}

// sentAcked is what one gateway published over the QoS 1 phases.
type sentAcked struct {
	gw          *gateway
	sent, acked int
}

// publishPhase runs one QoS 1 phase on conns: as fast as the window allows
// (rate 0), or paced at rate messages/s.
func publishPhase(ctx context.Context, name string, p *process, conns []*mqttConn, o *options, rate float64,
	logf func(string, ...any)) (publishSummary, []*publisher) {
	what := "unpaced"
	if rate > 0 {
		what = fmt.Sprintf("paced at %.0f messages/s", rate)
	}
	logf("%s: QoS 1, %s, %d publishers, window %d, %s warm-up, %s measured", name, what, len(conns), o.window, o.warmup, o.duration)
	var m0, m1 cpuSample
	pub := publish(ctx, conns, o.window, rate, o.warmup, o.duration, func(start bool) {
		if start {
			m0 = sampleCPU(p)
		} else {
			m1 = sampleCPU(p)
		}
	})
	sum := publishSummary{
		Publishers: len(conns), Window: o.window, OfferedPerSec: rate,
		PayloadBytes:  len(pumpReading(nil, conns[0].gw.serial, 1000, time.Now())),
		WarmupSeconds: o.warmup.Seconds(), Seconds: pub.measured.Seconds(), Acked: pub.acked,
		PerSec: float64(pub.acked) / pub.measured.Seconds(),
		P50MS:  ms(harness.Percentile(pub.latencies, 0.50)), P99MS: ms(harness.Percentile(pub.latencies, 0.99)),
		MaxMS: ms(harness.Percentile(pub.latencies, 1)), Errors: pub.errors,
	}
	if pub.firstErr != nil {
		sum.FirstError = pub.firstErr.Error()
	}
	sum.ServerCPUCores, sum.ClientCPUCores, sum.OtherCPUCores = cores(m0, m1)
	if pub.acked > 0 {
		sum.ServerCPUUS = float64(m1.server-m0.server) / float64(time.Microsecond) / float64(pub.acked)
	}
	logf("%s: %.0f messages/s acknowledged, PUBACK p50 %.1fms, p99 %.1fms, %d errors; CPU server %.2f, client %.2f",
		name, sum.PerSec, sum.P50MS, sum.P99MS, pub.errors, sum.ServerCPUCores, sum.ClientCPUCores)
	if pub.firstErr != nil {
		logf("%s: first publish error: %v", name, pub.firstErr)
	}
	return sum, pub.publishers
}

// verifyStored counts what gwpki stored for k publishers spread over pubs
// and checks that it is at least what they got PUBACKs for, and at most what
// they sent.
func verifyStored(ctx context.Context, srv *gwpki, roots *x509.CertPool, pubs []sentAcked, k int) ([]verified, error) {
	api, err := srv.login(ctx, roots)
	if err != nil {
		return nil, err
	}
	k = min(k, len(pubs))
	var out []verified
	for i := range k {
		p := pubs[i*(len(pubs)-1)/max(1, k-1)]
		n, err := api.countTelemetry(ctx, p.gw.serial, p.gw.topic)
		if err != nil {
			return nil, err
		}
		out = append(out, verified{Gateway: p.gw.serial, Published: p.sent, Acked: p.acked, Stored: n,
			OK: p.acked <= n && n <= p.sent})
	}
	return out, nil
}

// gitDescribe is `git describe --always --dirty` of the repository at root.
func gitDescribe(ctx context.Context, root string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
