package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"
)

// Targets of issue 3 for gwpki's responder on this 2-core machine.
const (
	targetRate  = 30000 // responses/s, at least
	targetP99MS = 10    // ms, at most
	targetRatio = 4     // times openssl ocsp, at least
)

// result is one server's timed run.
type result struct {
	Server      string  `json:"server"`
	Version     string  `json:"version"`
	URL         string  `json:"url"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	Checked     int     `json:"checked"`      // answers fully verified after the run
	BadAnswers  int     `json:"bad_answers"`  // of those, how many failed
	Connections int     `json:"connections"`  // opened during the timed run
	WallSeconds float64 `json:"wall_seconds"` // first request sent to last answer read
	RespPerSec  float64 `json:"responses_per_sec"`
	P50MS       float64 `json:"p50_ms"`
	P90MS       float64 `json:"p90_ms"`
	P99MS       float64 `json:"p99_ms"`
	MaxMS       float64 `json:"max_ms"`
	// ServerCPUCores is the server's CPU time (forked workers included)
	// over the wall time; ClientCPUCores this program's; OtherCPUCores every
	// other process's on the machine.
	ServerCPUCores float64 `json:"server_cpu_cores"`
	ClientCPUCores float64 `json:"client_cpu_cores"`
	OtherCPUCores  float64 `json:"other_cpu_cores"`
	// ServerCPUPerRespUS is the server's CPU time per answer: less
	// sensitive than responses/s to what else runs on a shared machine.
	ServerCPUPerRespUS float64 `json:"server_cpu_per_response_us"`
	LoadAvg            string  `json:"loadavg_before"` // /proc/loadavg just before the run
}

func newResult(s *server, l *loadRun) *result {
	lat := l.sorted()
	ok := len(l.latencies) - l.errors
	return &result{
		Server:      s.name,
		Version:     s.version,
		URL:         s.url,
		Requests:    len(l.latencies),
		Errors:      l.errors,
		Connections: l.dials,
		WallSeconds: l.wall.Seconds(),
		RespPerSec:  float64(ok) / l.wall.Seconds(),
		P50MS:       ms(harness.Percentile(lat, 0.50)),
		P90MS:       ms(harness.Percentile(lat, 0.90)),
		P99MS:       ms(harness.Percentile(lat, 0.99)),
		MaxMS:       ms(harness.Percentile(lat, 1)),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMS(v float64) string { return fmt.Sprintf("%.2fms", v) }

// report is what the benchmark prints and writes to its results file.
type report struct {
	Date        time.Time    `json:"date"`
	Build       string       `json:"git_describe"` // of the working tree the harness ran from
	Host        harness.Host `json:"host"`
	Certs       int          `json:"certs"`
	Revoked     int          `json:"revoked"`
	Concurrency int          `json:"concurrency"`
	Warmup      int          `json:"warmup"`
	Flow        string       `json:"flow"`
	Results     []*result    `json:"results"`
	// Ratio is gwpki's responses/s over openssl's, when both ran.
	Ratio float64 `json:"ratio_gwpki_over_openssl,omitempty"`
	// CPURatio is openssl's server CPU time per answer over gwpki's: what
	// the ratio would be with the client elsewhere and the CPU the limit.
	CPURatio float64          `json:"cpu_per_response_ratio_openssl_over_gwpki,omitempty"`
	Targets  []harness.Target `json:"targets,omitempty"`
}

func newReport(o *options, build string) *report {
	return &report{
		Date:        time.Now().UTC(),
		Build:       build,
		Host:        harness.NewHost("client and server on the same machine, one server at a time"),
		Certs:       o.certs,
		Concurrency: o.c,
		Warmup:      o.warmup,
		Flow: "RFC 5019 GET /<URL-escaped base64 of a DER OCSP request> (one SHA-1 CertID, no nonce), the certificates " +
			"round-robin, from a raw HTTP/1.1 client, one connection per worker, kept alive when the server allows it",
	}
}

func (r *report) finish() {
	var g, o *result
	for _, res := range r.Results {
		switch res.Server {
		case serverGwpki:
			g = res
		case serverOpenSSL:
			o = res
		}
	}
	if g != nil && o != nil && o.RespPerSec > 0 {
		r.Ratio = g.RespPerSec / o.RespPerSec
		if g.ServerCPUPerRespUS > 0 {
			r.CPURatio = o.ServerCPUPerRespUS / g.ServerCPUPerRespUS
		}
	}
	if g == nil {
		return
	}
	r.Targets = append(r.Targets,
		harness.Target{What: "gwpki responses/s", Want: fmt.Sprintf(">= %d", targetRate), Got: g.RespPerSec, Met: g.RespPerSec >= targetRate},
		harness.Target{What: "gwpki p99 (ms)", Want: fmt.Sprintf("<= %d", targetP99MS), Got: g.P99MS, Met: g.P99MS <= targetP99MS})
	if r.Ratio > 0 {
		r.Targets = append(r.Targets,
			harness.Target{What: "ratio gwpki/openssl", Want: fmt.Sprintf(">= %d", targetRatio), Got: r.Ratio, Met: r.Ratio >= targetRatio})
	}
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "ocsp: %d certificates (%d revoked), %d connections, %d warm-up; build %s; %s, %d CPUs\n",
		r.Certs, r.Revoked, r.Concurrency, r.Warmup, r.Build, r.Host.CPU, r.Host.CPUs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tversion\trequests\tresp/s\tp50\tp99\tmax\terrors\tconns\tCPU/resp\tCPU: server\tclient\tothers\t")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%s\t%s\t%s\t%d\t%d\t%.1fµs\t%.2f\t%.2f\t%.2f\t\n",
			res.Server, res.Version, res.Requests, res.RespPerSec, fmtMS(res.P50MS), fmtMS(res.P99MS), fmtMS(res.MaxMS),
			res.Errors+res.BadAnswers, res.Connections, res.ServerCPUPerRespUS,
			res.ServerCPUCores, res.ClientCPUCores, res.OtherCPUCores)
	}
	tw.Flush()
	fmt.Fprintf(w, "errors: failed requests plus sampled answers that failed verification; conns: connections opened "+
		"in the timed run; CPU/resp: server CPU time per answer; CPU columns: cores used during the timed run by the "+
		"server, by this client, and by every other process (of %d)\n", r.Host.CPUs)
	if r.Ratio > 0 {
		fmt.Fprintf(w, "ratio gwpki/openssl: %.2fx responses/s; server CPU per answer, openssl/gwpki: %.2fx\n",
			r.Ratio, r.CPURatio)
	}
	for _, t := range r.Targets {
		verdict := "met"
		if !t.Met {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "harness.Target %s %s: %.2f, %s\n", t.What, t.Want, t.Got, verdict)
	}
}

// write stores the report as dir/ocsp-<date>.json and returns its path.
func (r *report) write(dir string) (string, error) {
	return harness.WriteResults(dir, "ocsp", r.Date, r)
}
