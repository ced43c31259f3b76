package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"
)

// Targets of issue 6 (point 6) on this 2-core machine.
const (
	targetConnects     = 1000       // mTLS connects/s of gwpki, at least
	targetConnectRatio = 1.5        // times mosquitto's connects/s, at least
	targetMessages     = 10000      // durable QoS 1 messages/s of gwpki, at least
	targetP99MS        = 100        // PUBACK p99 of gwpki, at most
	targetMessageRatio = 1.0        // times mosquitto's messages/s, at least
	targetRSSBytes     = 1536 << 20 // gwpki's RSS with 10,000 gateways connected, at most
	targetRSSGateways  = 10000
)

// result is one broker's run.
type result struct {
	Broker  string `json:"broker"`
	Version string `json:"version"`
	Addr    string `json:"addr"`
	TLS     string `json:"tls"` // version and key exchange the load generator negotiated
	// Durability says what the broker did with a QoS 1 message before its
	// PUBACK.
	Durability string `json:"durability"`

	Connect connectResult `json:"connect"`
	Memory  memoryResult  `json:"memory"`
	// QoSConnected is how many gateways were connected during the QoS 1
	// phases.
	QoSConnected int            `json:"qos_connected"`
	Publish      publishSummary `json:"publish"`
	// Paced is the QoS 1 phase paced at -rate messages/s.
	Paced    *publishSummary `json:"paced,omitempty"`
	Verified []verified      `json:"verified,omitempty"`
}

type connectResult struct {
	Gateways       int     `json:"gateways"`
	Connected      int     `json:"connected"`
	Errors         int     `json:"errors"`
	FirstError     string  `json:"first_error,omitempty"`
	Connectors     int     `json:"connectors"`
	WallSeconds    float64 `json:"wall_seconds"`
	PerSec         float64 `json:"connects_per_sec"`
	P50MS          float64 `json:"p50_ms"`
	P99MS          float64 `json:"p99_ms"`
	MaxMS          float64 `json:"max_ms"`
	ServerCPUCores float64 `json:"server_cpu_cores"`
	ClientCPUCores float64 `json:"client_cpu_cores"`
	OtherCPUCores  float64 `json:"other_cpu_cores"`
	ServerCPUMS    float64 `json:"server_cpu_per_connect_ms"`
}

type memoryResult struct {
	// RSS before the storm, with every gateway connected (2 s after the
	// storm), and the peak over the broker's life so far.
	IdleMB      float64 `json:"rss_idle_mb"`
	ConnectedMB float64 `json:"rss_connected_mb"`
	PeakMB      float64 `json:"rss_peak_mb"`
	// PerGatewayKB is (connected - idle) / connected gateways.
	PerGatewayKB float64 `json:"rss_per_gateway_kb"`
}

type publishSummary struct {
	Publishers     int     `json:"publishers"`
	Window         int     `json:"window"`
	OfferedPerSec  float64 `json:"offered_per_sec,omitempty"` // paced: messages/s offered; 0: unpaced
	PayloadBytes   int     `json:"payload_bytes"`
	WarmupSeconds  float64 `json:"warmup_seconds"`
	Seconds        float64 `json:"seconds"`
	Acked          int64   `json:"acked"`
	PerSec         float64 `json:"messages_per_sec"`
	P50MS          float64 `json:"p50_ms"`
	P99MS          float64 `json:"p99_ms"`
	MaxMS          float64 `json:"max_ms"`
	Errors         int     `json:"errors"`
	FirstError     string  `json:"first_error,omitempty"`
	ServerCPUCores float64 `json:"server_cpu_cores"`
	ClientCPUCores float64 `json:"client_cpu_cores"`
	OtherCPUCores  float64 `json:"other_cpu_cores"`
	ServerCPUUS    float64 `json:"server_cpu_per_message_us"`
}

// verified is one gateway whose stored telemetry was counted after the run.
type verified struct {
	Gateway   string `json:"gateway"`
	Published int    `json:"published"`
	Acked     int    `json:"acked"`
	Stored    int    `json:"stored"`
	OK        bool   `json:"ok"` // acked <= stored <= published
}

// report is what the benchmark prints and writes to its results file.
type report struct {
	Date     time.Time          `json:"date"`
	Build    string             `json:"git_describe"`
	Host     harness.Host       `json:"host"`
	Gateways int                `json:"gateways"`
	Flow     string             `json:"flow"`
	Results  []*result          `json:"results"`
	Ratios   map[string]float64 `json:"ratios_gwpki_over_mosquitto,omitempty"`
	Targets  []harness.Target   `json:"targets,omitempty"`
	// Unevaluated lists targets this run could not judge (a broker not run,
	// fewer gateways than the target names).
	Unevaluated []string `json:"unevaluated,omitempty"`
}

func newReport(o *options, build string) *report {
	return &report{
		Date:     time.Now().UTC(),
		Build:    build,
		Host:     harness.NewHost("brokers, load generator and harness on the same machine, one broker at a time"),
		Gateways: o.n,
		Flow: fmt.Sprintf("connect storm: %d connectors open one mTLS connection per gateway (TLS 1.2+, the gateway's "+
			"operational certificate from POST /v1/bootstrap), CONNECT MQTT 3.1.1 with client ID = serial, clean session, "+
			"wait for CONNACK accepted; all stay open. QoS 1: %d of them publish a ~200-byte JSON pump reading to "+
			"gw/<serial>/telemetry, %d unacknowledged per connection, %s warm-up then %s measured; PUBACK latency "+
			"from writing the PUBLISH to reading its PUBACK", o.conns, o.publishers, o.window, o.warmup, o.duration),
	}
}

func (r *report) result(name string) *result {
	for _, res := range r.Results {
		if res.Broker == name {
			return res
		}
	}
	return nil
}

// finish computes the ratios and judges the targets.
func (r *report) finish() {
	g, m := r.result(brokerGwpki), r.result(brokerMosquitto)
	if g == nil {
		r.Unevaluated = append(r.Unevaluated, "every target: gwpki's broker was not run")
		return
	}
	add := func(what, want string, got float64, met bool) {
		r.Targets = append(r.Targets, harness.Target{What: what, Want: want, Got: got, Met: met})
	}
	add("gwpki mTLS connects/s", fmt.Sprintf(">= %d", targetConnects), g.Connect.PerSec, g.Connect.PerSec >= targetConnects)
	add("gwpki durable QoS 1 messages/s", fmt.Sprintf(">= %d", targetMessages), g.Publish.PerSec, g.Publish.PerSec >= targetMessages)
	if pc := g.Paced; pc != nil && pc.OfferedPerSec >= targetMessages {
		// The latency target at the rate of the throughput target: the
		// paced phase, if gwpki kept up with what was offered.
		kept := pc.PerSec >= 0.98*pc.OfferedPerSec
		add(fmt.Sprintf("gwpki PUBACK p99 (ms) at %.0f messages/s offered, all acknowledged", pc.OfferedPerSec),
			fmt.Sprintf("<= %d", targetP99MS), pc.P99MS, kept && pc.Acked > 0 && pc.P99MS <= targetP99MS)
	} else {
		add("gwpki PUBACK p99 (ms), unpaced", fmt.Sprintf("<= %d", targetP99MS), g.Publish.P99MS,
			g.Publish.Acked > 0 && g.Publish.P99MS <= targetP99MS)
	}
	if m != nil && m.Connect.PerSec > 0 && m.Publish.PerSec > 0 {
		r.Ratios = map[string]float64{
			"connects_per_sec": g.Connect.PerSec / m.Connect.PerSec,
			"messages_per_sec": g.Publish.PerSec / m.Publish.PerSec,
		}
		if m.Memory.ConnectedMB > 0 {
			r.Ratios["rss_connected"] = g.Memory.ConnectedMB / m.Memory.ConnectedMB
		}
		add("ratio gwpki/mosquitto, connects/s", fmt.Sprintf(">= %.1f", targetConnectRatio), r.Ratios["connects_per_sec"],
			r.Ratios["connects_per_sec"] >= targetConnectRatio)
		add("ratio gwpki/mosquitto, messages/s", fmt.Sprintf(">= %.1f", targetMessageRatio), r.Ratios["messages_per_sec"],
			r.Ratios["messages_per_sec"] >= targetMessageRatio)
	} else {
		r.Unevaluated = append(r.Unevaluated, "the ratios to mosquitto: mosquitto was not run")
	}
	if g.Connect.Connected >= targetRSSGateways {
		add(fmt.Sprintf("gwpki RSS with %d gateways connected (MB)", g.Connect.Connected), fmt.Sprintf("<= %d", targetRSSBytes>>20),
			g.Memory.ConnectedMB, g.Memory.ConnectedMB <= targetRSSBytes>>20)
	} else {
		r.Unevaluated = append(r.Unevaluated, fmt.Sprintf("gwpki RSS with 10,000 gateways connected: only %d connected (-n); "+
			"at %.0f KB per gateway that would be about %.0f MB", g.Connect.Connected, g.Memory.PerGatewayKB,
			g.Memory.IdleMB+g.Memory.PerGatewayKB*targetRSSGateways/1024))
	}
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "mqtt: %d gateways; build %s; %s, %d CPUs\n", r.Gateways, r.Build, r.Host.CPU, r.Host.CPUs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, f func(*result) string, ratio string) {
		fmt.Fprintf(tw, "%s\t", name)
		for _, res := range r.Results {
			fmt.Fprintf(tw, "%s\t", f(res))
		}
		if len(r.Results) > 1 {
			fmt.Fprintf(tw, "%s\t", ratio)
		}
		fmt.Fprintln(tw)
	}
	ratio := func(k string) string {
		if v, ok := r.Ratios[k]; ok {
			return fmt.Sprintf("%.2fx", v)
		}
		return ""
	}
	head := "\t"
	for _, res := range r.Results {
		head += res.Broker + "\t"
	}
	if len(r.Results) > 1 {
		head += "gwpki/mosquitto\t"
	}
	fmt.Fprintln(tw, head)
	row("version", func(x *result) string { return x.Version }, "")
	row("TLS", func(x *result) string { return x.TLS }, "")
	row("connect storm: connected", func(x *result) string {
		return fmt.Sprintf("%d of %d", x.Connect.Connected, x.Connect.Gateways)
	}, "")
	row("  connects/s", func(x *result) string { return fmt.Sprintf("%.0f", x.Connect.PerSec) }, ratio("connects_per_sec"))
	row("  latency p50 / p99", func(x *result) string {
		return fmt.Sprintf("%.1f / %.1f ms", x.Connect.P50MS, x.Connect.P99MS)
	}, "")
	row("  server CPU per connect", func(x *result) string { return fmt.Sprintf("%.2f ms", x.Connect.ServerCPUMS) }, "")
	row("  CPU cores: server / client / others", func(x *result) string {
		return fmt.Sprintf("%.2f / %.2f / %.2f", x.Connect.ServerCPUCores, x.Connect.ClientCPUCores, x.Connect.OtherCPUCores)
	}, "")
	row("RSS: idle / all connected / peak", func(x *result) string {
		return fmt.Sprintf("%.0f / %.0f / %.0f MB", x.Memory.IdleMB, x.Memory.ConnectedMB, x.Memory.PeakMB)
	}, ratio("rss_connected"))
	row("  per connected gateway", func(x *result) string { return fmt.Sprintf("%.1f KB", x.Memory.PerGatewayKB) }, "")
	row("QoS 1: gateways connected", func(x *result) string { return fmt.Sprintf("%d", x.QoSConnected) }, "")
	row("QoS 1 unpaced: publishers x window", func(x *result) string {
		return fmt.Sprintf("%d x %d", x.Publish.Publishers, x.Publish.Window)
	}, "")
	row("  messages/s acknowledged", func(x *result) string { return fmt.Sprintf("%.0f", x.Publish.PerSec) }, ratio("messages_per_sec"))
	row("  PUBACK p50 / p99 / max", func(x *result) string {
		return fmt.Sprintf("%.1f / %.1f / %.0f ms", x.Publish.P50MS, x.Publish.P99MS, x.Publish.MaxMS)
	}, "")
	row("  server CPU per message", func(x *result) string { return fmt.Sprintf("%.1f µs", x.Publish.ServerCPUUS) }, "")
	row("  CPU cores: server / client / others", func(x *result) string {
		return fmt.Sprintf("%.2f / %.2f / %.2f", x.Publish.ServerCPUCores, x.Publish.ClientCPUCores, x.Publish.OtherCPUCores)
	}, "")
	if r.Results[0].Paced != nil {
		row(fmt.Sprintf("QoS 1 paced at %.0f/s: messages/s", r.Results[0].Paced.OfferedPerSec), func(x *result) string {
			return fmt.Sprintf("%.0f", x.Paced.PerSec)
		}, "")
		row("  PUBACK p50 / p99 / max", func(x *result) string {
			return fmt.Sprintf("%.1f / %.1f / %.0f ms", x.Paced.P50MS, x.Paced.P99MS, x.Paced.MaxMS)
		}, "")
		row("  CPU cores: server / client / others", func(x *result) string {
			return fmt.Sprintf("%.2f / %.2f / %.2f", x.Paced.ServerCPUCores, x.Paced.ClientCPUCores, x.Paced.OtherCPUCores)
		}, "")
	}
	row("  errors (connect, publish)", func(x *result) string {
		n := x.Publish.Errors
		if x.Paced != nil {
			n += x.Paced.Errors
		}
		return fmt.Sprintf("%d, %d", x.Connect.Errors, n)
	}, "")
	tw.Flush()
	for _, res := range r.Results {
		fmt.Fprintf(w, "%s before PUBACK: %s\n", res.Broker, res.Durability)
		if res.Connect.FirstError != "" {
			fmt.Fprintf(w, "%s: first connect error: %s\n", res.Broker, res.Connect.FirstError)
		}
		if res.Publish.FirstError != "" {
			fmt.Fprintf(w, "%s: first publish error: %s\n", res.Broker, res.Publish.FirstError)
		}
		if res.Paced != nil && res.Paced.FirstError != "" {
			fmt.Fprintf(w, "%s: first paced publish error: %s\n", res.Broker, res.Paced.FirstError)
		}
		if len(res.Verified) > 0 {
			var parts []string
			for _, v := range res.Verified {
				mark := "ok"
				if !v.OK {
					mark = "WRONG"
				}
				parts = append(parts, fmt.Sprintf("%s %d acked, %d stored, %d sent (%s)", v.Gateway, v.Acked, v.Stored, v.Published, mark))
			}
			fmt.Fprintf(w, "%s stored telemetry (GET /v1/devices/<serial>/telemetry): %s\n", res.Broker, strings.Join(parts, "; "))
		}
	}
	fmt.Fprintln(w, "unpaced: every publisher keeps its window full, so PUBACK latency is about window x publishers / messages/s "+
		"(Little's law); paced: the publishers offer the given rate together, and latency is the broker's at that load")
	fmt.Fprintf(w, "CPU cores: CPU time over wall time of the storm or the measured window, of the broker, of this "+
		"load generator, and of every other process (of %d)\n", r.Host.CPUs)
	for _, t := range r.Targets {
		verdict := "met"
		if !t.Met {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "target %s %s: %.2f, %s\n", t.What, t.Want, t.Got, verdict)
	}
	for _, u := range r.Unevaluated {
		fmt.Fprintf(w, "target not evaluated: %s\n", u)
	}
}

// write stores the report as dir/mqtt-<date>.json and returns its path.
func (r *report) write(dir string) (string, error) {
	return harness.WriteResults(dir, "mqtt", r.Date, r)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mb(b int64) float64 { return float64(b) / (1 << 20) }
