package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"
)

const stationName = "soak"

// initData creates gwpki's data directory and the station
// (dataDir/station.json).
func initData(ctx context.Context, bin, dataDir, work string) error {
	if _, err := harness.RunQuiet(ctx, filepath.Join(work, "gwpki-init.log"), nil, bin,
		"init", "--dir", dataDir, "--hostname", "127.0.0.1"); err != nil {
		return err
	}
	_, err := harness.RunQuiet(ctx, filepath.Join(work, "gwpki-station.log"), nil, bin,
		"station", "add", stationName, "--dir", dataDir, "--out", filepath.Join(dataDir, "station.json"))
	return err
}

// provision makes n gateways SK-000001... in bundles, as a production line
// would: `gwpki provision`, labels off, with the CA at apiURL.
func provision(ctx context.Context, bin, apiURL, dataDir, bundles, work string, n int) error {
	_, err := harness.RunQuiet(ctx, filepath.Join(work, "gwpki-provision.log"), nil, bin, "provision", "--ca", apiURL,
		"--root", rootCert(dataDir), "--station", filepath.Join(dataDir, "station.json"),
		"--out", bundles, "--serial-prefix", "SK-", "--count", strconv.Itoa(n), "--model", "soak")
	return err
}

// rootCert is ca.Layout{Dir: dataDir}.RootCert(), spelt out so that the
// soak builds while package ca is being edited (give -gwpki a binary).
func rootCert(dataDir string) string { return filepath.Join(dataDir, "certs", "root_ca.crt") }

// server is a running `gwpki serve`.
type server struct {
	*harness.Process
	apiURL     string
	metricsURL string
	client     *http.Client
}

// startServer starts `gwpki serve` on loopback ports and waits for its
// ready file and GET /healthz.
func startServer(ctx context.Context, bin, dataDir, work string) (*server, error) {
	readyFile := filepath.Join(work, "gwpki-ready.json")
	// A port of our own for MQTT rather than :0, which the bootstrap
	// service's endpoint pool may refuse to announce (as bench/mqtt does).
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	p, err := harness.StartProcess("gwpki serve", bin, filepath.Join(work, "gwpki-serve.log"), nil, nil,
		"serve", "--dir", dataDir, "--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--mqtt-addr", fmt.Sprintf("127.0.0.1:%d", port), "--ready-file", readyFile)
	if err != nil {
		return nil, err
	}
	var ready struct {
		APIURL  string `json:"api_url"`
		HTTPURL string `json:"http_url"`
	}
	for deadline := time.Now().Add(time.Minute); ready.HTTPURL == ""; {
		if b, err := os.ReadFile(readyFile); err == nil {
			_ = json.Unmarshal(b, &ready)
		}
		if ready.HTTPURL != "" {
			break
		}
		if p.Exited() || time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop(10 * time.Second)
			return nil, p.Failure("wrote no ready file")
		}
		time.Sleep(50 * time.Millisecond)
	}
	httpURL := strings.TrimSuffix(ready.HTTPURL, "/")
	if err := harness.WaitHealthy(ctx, httpURL, time.Minute, p.Exited); err != nil {
		p.Stop(10 * time.Second)
		return nil, p.Failure(err.Error())
	}
	return &server{Process: p, apiURL: strings.TrimSuffix(ready.APIURL, "/"), metricsURL: httpURL + "/metrics", client: &http.Client{Timeout: 10 * time.Second}}, nil
}

// scrape reads the server's /metrics.
func (s *server) scrape(ctx context.Context) (map[string]float64, error) {
	return harness.ScrapeMetrics(ctx, s.client, s.metricsURL)
}

// simStatus is what the sim's last summary line said.
type simStatus struct {
	line                string
	gateways, connected int
	published           uint64
	minConnected        int // the least connected since the last mark
	summaries           int // since the last mark
}

// simWatcher reads the sim's output for its summary lines:
// "sim: 2000 gateways, 1998 connected, 12 claimed, 399.6 msgs/s (399.6 acked/s), 95880 published".
type simWatcher struct {
	mu      sync.Mutex
	partial []byte
	st      simStatus
}

var summaryRE = regexp.MustCompile(`^sim: (\d+) gateways, (\d+) connected, .*, (\d+) published$`)

func (w *simWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(bytes.TrimSpace(w.partial[:i]))
		w.partial = w.partial[i+1:]
		m := summaryRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		w.st.line = line
		w.st.gateways, _ = strconv.Atoi(m[1])
		w.st.connected, _ = strconv.Atoi(m[2])
		w.st.published, _ = strconv.ParseUint(m[3], 10, 64)
		if w.st.summaries == 0 || w.st.connected < w.st.minConnected {
			w.st.minConnected = w.st.connected
		}
		w.st.summaries++
	}
	return len(p), nil
}

func (w *simWatcher) get() simStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st
}

// mark starts counting minConnected and summaries afresh.
func (w *simWatcher) mark() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.st.summaries, w.st.minConnected = 0, w.st.connected
}
