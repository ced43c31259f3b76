package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// gwpkiRunner runs `gwpki provision` batches against a running server.
type gwpkiRunner struct {
	bin     string
	srv     *server
	dataDir string
	work    string
	model   string
}

// args are the command line of `gwpki provision` for b.
func (g *gwpkiRunner) args(b batch) []string {
	args := []string{"provision",
		"--ca", g.srv.apiURL,
		"--root", filepath.Join(g.dataDir, "certs", "root_ca.crt"),
		"--station", filepath.Join(g.dataDir, "station.json"),
		"--out", filepath.Join(g.work, b.out),
		"--serial-prefix", b.prefix, "--start", strconv.Itoa(b.start), "--count", strconv.Itoa(b.count),
		"--concurrency", strconv.Itoa(b.conc),
		"--model", g.model,
	}
	if b.label != "" {
		args = append(args, "--label", b.label)
	}
	return append(args, "--json")
}

// provision runs and times one batch; every gateway must be provisioned.
func (g *gwpkiRunner) provision(ctx context.Context, b batch) (*result, error) {
	args := g.args(b)
	logPath := filepath.Join(g.work, "gwpki-provision-"+strings.TrimPrefix(b.out, "out-")+".log")
	w, err := timeCommand(ctx, g.srv, logPath, nil, g.bin, args...)
	if err != nil {
		return nil, fmt.Errorf("%w (server log: %s)", err, g.srv.logPath)
	}
	sum, err := parseSummary(w.stdout)
	if err != nil {
		return nil, fmt.Errorf("gwpki provision: %w (log: %s)", err, logPath)
	}
	if sum.Done != b.count || sum.Skipped != 0 || sum.Failed != 0 {
		return nil, fmt.Errorf("gwpki provision: %d gateways provisioned, %d skipped, %d failed; want %d provisioned (log: %s)",
			sum.Done, sum.Skipped, sum.Failed, b.count, logPath)
	}
	name := "gwpki"
	labels := "off"
	if b.label != "" {
		name, labels = "gwpki, "+b.label+" labels", b.label
	}
	r := &result{
		Name:        name,
		Tool:        "gwpki provision",
		Version:     g.srv.version,
		Labels:      labels,
		Concurrency: b.conc,
		Command:     "gwpki " + strings.Join(args, " "),
		OwnSeconds:  sum.Seconds,
		OwnPerSec:   sum.PerSecond,
	}
	r.fill(w, sum.Done)
	return r, nil
}

// summary is what `gwpki provision --json` prints on stdout at the end.
type summary struct {
	Done      int     `json:"done"`
	Skipped   int     `json:"skipped"`
	Failed    int     `json:"failed"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	Out       string  `json:"out"`
}

// parseSummary reads the summary from the output of `gwpki provision
// --json`: its last non-empty line.
func parseSummary(stdout []byte) (summary, error) {
	lines := bytes.Split(bytes.TrimSpace(stdout), []byte("\n"))
	last := bytes.TrimSpace(lines[len(lines)-1])
	if len(last) == 0 {
		return summary{}, errors.New("no summary on stdout")
	}
	var s summary
	if err := json.Unmarshal(last, &s); err != nil {
		return summary{}, fmt.Errorf("read the --json summary %q: %w", last, err)
	}
	if s.Done < 0 || s.Skipped < 0 || s.Failed < 0 || s.Seconds <= 0 {
		return summary{}, fmt.Errorf("read the --json summary %q: impossible figures", last)
	}
	return s, nil
}
