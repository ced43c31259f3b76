package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"
)

// Targets of issue 4 (point 7) on this 2-core machine, labels off.
const (
	targetRate  = 1000 // gateways/s end to end, at least
	targetRatio = 50   // times the shell loop's gateways/s, at least
)

// result is one timed command: a gwpki provision batch or the shell loop.
type result struct {
	Name        string `json:"name"`
	Tool        string `json:"tool"`
	Version     string `json:"version"`
	Labels      string `json:"labels"`                // off, png, ...; "-" for the shell loop
	Concurrency int    `json:"concurrency,omitempty"` // gwpki provision --concurrency
	Command     string `json:"command"`
	Gateways    int    `json:"gateways"`
	Checked     int    `json:"checked"` // gateways checked after the timed windows
	Bad         int    `json:"bad"`     // of those, how many failed (the manifest counts as one)
	// WallSeconds is the command's wall time, from its start to its exit.
	WallSeconds    float64 `json:"wall_seconds"`
	GatewaysPerSec float64 `json:"gateways_per_sec"`
	// OwnSeconds and OwnPerSec are gwpki provision's own summary (--json):
	// the batch inside the process, without its start.
	OwnSeconds float64 `json:"own_seconds,omitempty"`
	OwnPerSec  float64 `json:"own_per_sec,omitempty"`
	// CPU used during the command, over its wall time: the server's, the
	// command's (the shell loop's with its step processes) and every other
	// process's on the machine.
	ServerCPUCores float64 `json:"server_cpu_cores"`
	ClientCPUCores float64 `json:"command_cpu_cores"`
	OtherCPUCores  float64 `json:"other_cpu_cores"`
	// CPU time per gateway: less sensitive than gateways/s to what else runs
	// on a shared machine.
	ServerCPUPerGatewayMS float64 `json:"server_cpu_per_gateway_ms"`
	ClientCPUPerGatewayMS float64 `json:"command_cpu_per_gateway_ms"`
	// ClientSysPerGatewayMS is the part of ClientCPUPerGatewayMS spent in
	// the kernel: file creation, mostly, for gwpki provision (see
	// fsprobe.go).
	ClientSysPerGatewayMS float64 `json:"command_sys_cpu_per_gateway_ms"`
	LoadAvg               string  `json:"loadavg_before"` // /proc/loadavg just before the command
	// CreateUS is the CPU time, in µs, one file creation cost in the work
	// directory just before the command (see fsprobe.go).
	CreateUS float64 `json:"file_create_cpu_us"`
}

// report is what the benchmark prints and writes to its results file.
type report struct {
	Date          time.Time    `json:"date"`
	Build         string       `json:"git_describe"` // of the working tree the harness ran from
	Server        string       `json:"gwpki_version"`
	Host          harness.Host `json:"host"`
	Gateways      int          `json:"gateways"`       // per gwpki batch
	ShellGateways int          `json:"shell_gateways"` // of the shell loop
	Warmup        int          `json:"warmup"`
	Concurrency   []int        `json:"concurrency"`      // gwpki batches without labels
	Best          int          `json:"best_concurrency"` // the fastest of them, used for the labels run and the ratio
	Model         string       `json:"model"`
	Flow          string       `json:"flow"`
	Results       []*result    `json:"results"`
	// Ratio is the best gwpki gateways/s without labels over the shell
	// loop's; LabelRatio the same with labels.
	Ratio      float64 `json:"ratio_gwpki_over_shell,omitempty"`
	LabelRatio float64 `json:"ratio_gwpki_labels_over_shell,omitempty"`
	// CPURatio is the shell loop's CPU per gateway (server and command) over
	// gwpki's without labels.
	CPURatio float64          `json:"cpu_per_gateway_ratio_shell_over_gwpki,omitempty"`
	Targets  []harness.Target `json:"targets,omitempty"`
}

func newReport(o *options, build string) *report {
	return &report{
		Date:          time.Now().UTC(),
		Build:         build,
		Host:          harness.NewHost("gwpki serve, the provisioning command and the harness on the same machine, one command at a time"),
		Gateways:      o.n,
		ShellGateways: o.nShell,
		Warmup:        o.warmup,
		Concurrency:   o.conc,
		Model:         o.model,
		Flow: "gwpki provision: per gateway a P-256 key, its birth certificate (POST /1.0/sign with a station token), " +
			"its registration and claim credentials (POST /v1/devices), a bundle (idevid.crt, idevid.key, root.pem, " +
			"gateway.json, label), durable, and the manifest; shell loop: per gateway `step ca token` then " +
			"`step ca certificate` (a key and a birth certificate only), one gateway after the other",
	}
}

// finish computes the ratios and the targets; best is the index in
// r.Results of the fastest gwpki batch without labels.
func (r *report) finish(best int) {
	var off, lab, shell *result
	for i, res := range r.Results {
		switch {
		case res.Tool == "gwpki provision" && res.Labels == "off" && i == best:
			off = res
		case res.Tool == "gwpki provision" && res.Labels != "off":
			lab = res
		case res.Tool != "gwpki provision":
			shell = res
		}
	}
	if off == nil {
		return
	}
	r.Best = off.Concurrency
	if shell != nil && shell.GatewaysPerSec > 0 {
		r.Ratio = off.GatewaysPerSec / shell.GatewaysPerSec
		if lab != nil {
			r.LabelRatio = lab.GatewaysPerSec / shell.GatewaysPerSec
		}
		if c := off.ServerCPUPerGatewayMS + off.ClientCPUPerGatewayMS; c > 0 {
			r.CPURatio = (shell.ServerCPUPerGatewayMS + shell.ClientCPUPerGatewayMS) / c
		}
	}
	r.Targets = append(r.Targets, harness.Target{
		What: "gwpki gateways/s, labels off", Want: fmt.Sprintf(">= %d", targetRate),
		Got: off.GatewaysPerSec, Met: off.GatewaysPerSec >= targetRate,
	})
	if r.Ratio > 0 {
		r.Targets = append(r.Targets, harness.Target{
			What: "ratio gwpki/shell loop", Want: fmt.Sprintf(">= %d", targetRatio),
			Got: r.Ratio, Met: r.Ratio >= targetRatio,
		})
	}
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "provision: %d gateways per gwpki batch, %d for the shell loop, %d warm-up; build %s; %s, %d CPUs\n",
		r.Gateways, r.ShellGateways, r.Warmup, r.Build, r.Host.CPU, r.Host.CPUs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tlabels\tconc\tgateways\twall\tgateways/s\town/s\tbad\tCPU/gw: server\tcommand\t(sys)\tCPU: server\tcommand\tothers\tcreate\t")
	for _, res := range r.Results {
		conc, own := "1", "-"
		if res.Concurrency > 0 {
			conc = fmt.Sprint(res.Concurrency)
		}
		if res.OwnPerSec > 0 {
			own = fmt.Sprintf("%.0f", res.OwnPerSec)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.2fs\t%s\t%s\t%d\t%.2fms\t%.2fms\t%.2fms\t%.2f\t%.2f\t%.2f\t%.0fµs\t\n",
			res.Name, res.Labels, conc, res.Gateways, res.WallSeconds, fmtRate(res.GatewaysPerSec), own, res.Bad,
			res.ServerCPUPerGatewayMS, res.ClientCPUPerGatewayMS, res.ClientSysPerGatewayMS, res.ServerCPUCores, res.ClientCPUCores, res.OtherCPUCores,
			res.CreateUS)
	}
	tw.Flush()
	fmt.Fprintf(w, "gateways/s: gateways / wall time of the command, start to exit; own/s: gwpki provision's own summary; "+
		"bad: gateways that failed the checks after the runs; CPU/gw: CPU time per gateway (sys: the command's in the kernel); CPU columns: cores used "+
		"during the command by gwpki serve, by the command (the loop: bash and its step processes) and by every "+
		"other process (of %d); create: CPU per file creation in the work directory just before the command "+
		"(20 to 40µs; ten times that for minutes after many deletions on ext4 without a journal)\n", r.Host.CPUs)
	fmt.Fprintln(w, "the shell loop makes a key and a birth certificate per gateway; gwpki provision also registers the "+
		"gateway, gets its claim credentials, and writes its bundle (and label) durably and the manifest")
	if r.Ratio > 0 {
		fmt.Fprintf(w, "ratio gwpki/shell loop (gateways/s, --concurrency %d): %.1fx labels off", r.Best, r.Ratio)
		if r.LabelRatio > 0 {
			fmt.Fprintf(w, ", %.1fx with labels", r.LabelRatio)
		}
		fmt.Fprintf(w, "; CPU per gateway, shell loop/gwpki: %.1fx\n", r.CPURatio)
	}
	for _, t := range r.Targets {
		verdict := "met"
		if !t.Met {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "harness.Target %s %s: %.1f, %s\n", t.What, t.Want, t.Got, verdict)
	}
}

func fmtRate(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// write stores the report as dir/provision-<date>.json and returns its path.
func (r *report) write(dir string) (string, error) {
	return harness.WriteResults(dir, "provision", r.Date, r)
}
