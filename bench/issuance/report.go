package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"
)

// result is one server's timed run.
type result struct {
	Server         string  `json:"server"`
	Version        string  `json:"version"`
	URL            string  `json:"url"`
	Requests       int     `json:"requests"`
	Errors         int     `json:"errors"`
	WallSeconds    float64 `json:"wall_seconds"`
	CertsPerSec    float64 `json:"certs_per_sec"`
	P50MS          float64 `json:"p50_ms"`
	P90MS          float64 `json:"p90_ms"`
	P99MS          float64 `json:"p99_ms"`
	MaxMS          float64 `json:"max_ms"`
	ServerCPUCores float64 `json:"server_cpu_cores"` // server CPU time / wall time
	ClientCPUCores float64 `json:"client_cpu_cores"` // this program's CPU time / wall time
	OtherCPUCores  float64 `json:"other_cpu_cores"`  // every other process's CPU time / wall time
	// ServerCPUPerCertMS is the server's CPU time per certificate: less
	// sensitive than certificates/s to what else runs on a shared machine.
	ServerCPUPerCertMS float64 `json:"server_cpu_per_cert_ms"`
	LoadAvg            string  `json:"loadavg_before"` // /proc/loadavg just before the run
}

func newResult(s *server, l *loadRun, errs int) *result {
	lat := l.latencies()
	ok := len(l.jobs) - errs
	return &result{
		Server:      s.name,
		Version:     s.version,
		URL:         s.url,
		Requests:    len(l.jobs),
		Errors:      errs,
		WallSeconds: l.wall.Seconds(),
		CertsPerSec: float64(ok) / l.wall.Seconds(),
		P50MS:       ms(harness.Percentile(lat, 0.50)),
		P90MS:       ms(harness.Percentile(lat, 0.90)),
		P99MS:       ms(harness.Percentile(lat, 0.99)),
		MaxMS:       ms(harness.Percentile(lat, 1)),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMS(v float64) string { return fmt.Sprintf("%.1fms", v) }

// report is what the benchmark prints and writes to its results file.
type report struct {
	Date        time.Time    `json:"date"`
	Host        harness.Host `json:"host"`
	Requests    int          `json:"requests"`
	Concurrency int          `json:"concurrency"`
	Warmup      int          `json:"warmup"`
	Flow        string       `json:"flow"`
	Results     []*result    `json:"results"`
	// Ratio is gwpki's certificates/s over step-ca's, when both ran.
	Ratio float64 `json:"ratio_gwpki_over_stepca,omitempty"`
}

func newReport(o *options) *report {
	return &report{
		Date:        time.Now().UTC(),
		Host:        harness.NewHost("client and server on the same machine, one server at a time"),
		Requests:    o.n,
		Concurrency: o.c,
		Warmup:      o.warmup,
		Flow: "POST /1.0/sign {csr, ott}: fresh P-256 CSR (CN=serial, SAN URI urn:gwpki:gateway:<serial>), " +
			"one-time JWK token (ES256) of provisioner \"bench\"; HTTP/1.1 keep-alive over TLS, one connection per worker",
	}
}

func (r *report) finish() {
	var g, s *result
	for _, res := range r.Results {
		switch res.Server {
		case serverGwpki:
			g = res
		case serverStepCA:
			s = res
		}
	}
	if g != nil && s != nil && s.CertsPerSec > 0 {
		r.Ratio = g.CertsPerSec / s.CertsPerSec
	}
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "issuance: %d requests per server, %d workers, %d warm-up; %s, %d CPUs\n",
		r.Requests, r.Concurrency, r.Warmup, r.Host.CPU, r.Host.CPUs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tversion\tcerts/s\tp50\tp99\tmax\terrors\tCPU/cert\tCPU: server\tclient\tothers\t")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%d\t%.2fms\t%.2f\t%.2f\t%.2f\t\n",
			res.Server, res.Version, res.CertsPerSec, fmtMS(res.P50MS), fmtMS(res.P99MS), fmtMS(res.MaxMS),
			res.Errors, res.ServerCPUPerCertMS, res.ServerCPUCores, res.ClientCPUCores, res.OtherCPUCores)
	}
	tw.Flush()
	fmt.Fprintf(w, "CPU/cert: server CPU time per certificate; CPU columns: cores used during the timed run "+
		"by the server, by this client, and by every other process (of %d)\n", r.Host.CPUs)
	if r.Ratio > 0 {
		fmt.Fprintf(w, "ratio gwpki/step-ca: %.2fx\n", r.Ratio)
	}
}

// write stores the report as dir/issuance-<date>.json and returns its path.
func (r *report) write(dir string) (string, error) {
	return harness.WriteResults(dir, "issuance", r.Date, r)
}
