package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"

	"github.com/gwpki/gwpki/bench/internal/proc"
)

const (
	// startTimeout bounds how long a server may take to become ready.
	startTimeout = 60 * time.Second
	// stopTimeout is how long a server gets after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
)

// server is a running server process under benchmark.
type server struct {
	name    string
	version string
	url     string // https://127.0.0.1:PORT, without a trailing slash
	logPath string

	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
}

// startProcess starts bin with args, its output going to logPath. The process
// is killed if this program dies without stopping it.
func startProcess(name, bin, logPath string, args ...string) (*server, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = proc.SysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(s.done)
	}()
	return s, nil
}

// exited reports whether the process has ended.
func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to stopTimeout, then sends SIGKILL.
func (s *server) stop() error {
	if s.exited() {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	return fmt.Errorf("did not stop within %s of SIGTERM; killed", stopTimeout)
}

// cpuTime is the CPU time (user and system, all threads) the server used so far.
func (s *server) cpuTime() (time.Duration, error) {
	return proc.ProcessCPUTime(s.cmd.Process.Pid)
}

// failure describes a server that did not start, with the end of its log.
func (s *server) failure(what string) error {
	state := "still running"
	if s.exited() {
		state = fmt.Sprintf("exited: %v", s.waitErr)
	}
	return fmt.Errorf("%s %s (%s); last lines of %s:\n%s", s.name, what, state, s.logPath, harness.Tail(s.logPath, 15))
}

// waitHealthy polls GET url/health until it answers 200, the process exits,
// or startTimeout passes.
func (s *server) waitHealthy(ctx context.Context, client *http.Client) error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if s.exited() {
			return s.failure("exited before it was healthy")
		}
		lastErr = getHealth(ctx, client, s.url+"/health")
		if lastErr == nil {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s.failure(fmt.Sprintf("not healthy after %s: %v", startTimeout, lastErr))
}

func getHealth(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// runQuiet runs a command, keeping its output in logPath; on failure the
// error carries the end of that output.
func runQuiet(ctx context.Context, logPath, bin string, args ...string) error {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if werr := os.WriteFile(logPath, out, 0o600); werr != nil && err == nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, harness.LastLines(string(out), 15))
	}
	return nil
}

// initGwpki creates gwpki's data directory and the "bench" station, whose
// plain private JWK lands in dataDir/bench.jwk.
func initGwpki(ctx context.Context, bin, dataDir, work string) error {
	if err := runQuiet(ctx, filepath.Join(work, "gwpki-init.log"), bin,
		"init", "--dir", dataDir, "--hostname", "127.0.0.1", "--hostname", "localhost"); err != nil {
		return err
	}
	return runQuiet(ctx, filepath.Join(work, "gwpki-station.log"), bin,
		"station", "add", stationName, "--dir", dataDir,
		"--out", filepath.Join(dataDir, "station.json"), "--jwk", filepath.Join(dataDir, "bench.jwk"))
}

// readyInfo is what `gwpki serve --ready-file` writes once it listens.
type readyInfo struct {
	APIURL  string `json:"api_url"`
	HTTPURL string `json:"http_url"`
}

// startGwpki starts `gwpki serve` on loopback ports chosen by the kernel and
// waits for its ready file and its /health.
func startGwpki(ctx context.Context, bin, dataDir, work string) (*server, error) {
	readyFile := filepath.Join(work, "gwpki-ready.json")
	os.Remove(readyFile)
	args := []string{"serve", "--dir", dataDir,
		"--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ready-file", readyFile}
	if hasFlag(ctx, bin, "--mqtt-addr", "serve") {
		// Never take the default MQTT port another gwpki on this machine may use.
		args = append(args, "--mqtt-addr", "127.0.0.1:0")
	}
	s, err := startProcess(serverGwpki, bin, filepath.Join(work, "gwpki-serve.log"), args...)
	if err != nil {
		return nil, err
	}
	s.version = gwpkiVersion(ctx, bin)

	deadline := time.Now().Add(startTimeout)
	for {
		var info readyInfo
		b, err := os.ReadFile(readyFile)
		if err == nil && json.Unmarshal(b, &info) == nil && info.APIURL != "" {
			s.url = strings.TrimSuffix(info.APIURL, "/")
			break
		}
		if s.exited() {
			return nil, s.failure("exited before writing its ready file")
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			s.stop()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, s.failure(fmt.Sprintf("wrote no ready file in %s", startTimeout))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s, nil
}

// hasFlag reports whether `bin args... --help` mentions flag.
func hasFlag(ctx context.Context, bin, flag string, args ...string) bool {
	out, _ := exec.CommandContext(ctx, bin, append(args, "--help")...).CombinedOutput()
	return bytes.Contains(out, []byte(flag))
}

func gwpkiVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "unknown"
	}
	return f[len(f)-1]
}

// findStepCA returns the step-ca binary to use: flagValue when given, else
// step-ca on PATH, else the one `go install` put in GOBIN or GOPATH/bin.
func findStepCA(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if p, err := exec.LookPath("step-ca"); err == nil {
		return p, nil
	}
	for _, v := range []string{"GOBIN", "GOPATH"} {
		out, err := exec.Command("go", "env", v).Output()
		dir := strings.TrimSpace(string(out))
		if err != nil || dir == "" {
			continue
		}
		if v == "GOPATH" {
			dir = filepath.Join(filepath.SplitList(dir)[0], "bin")
		}
		if p := filepath.Join(dir, "step-ca"); isExecutable(p) {
			return p, nil
		}
	}
	return "", errors.New("step-ca not found; run scripts/install-bench-deps.sh or give -stepca")
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// stepCAVersion reads the module version step-ca was built from (go install
// records it; step-ca's own "version" shows a placeholder then).
func stepCAVersion(bin string) string {
	info, err := buildinfo.ReadFile(bin)
	if err != nil || info.Main.Version == "" {
		return "unknown"
	}
	return info.Main.Version
}

// startStepCA writes a ca.json for stock step-ca that reuses gwpki's CA
// material and station key, starts step-ca on a free loopback port, and waits
// for its /health.
func startStepCA(ctx context.Context, bin string, ca *caMaterial, work string) (*server, error) {
	dir := filepath.Join(work, "step-ca")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := map[string]any{
		"root":     ca.rootPath,
		"crt":      ca.intermediatePath,
		"key":      ca.intermediateKeyPath,
		"address":  addr,
		"dnsNames": []string{"127.0.0.1", "localhost"},
		"logger":   map[string]any{"format": "text"},
		"db": map[string]any{
			"type":       "bbolt",
			"dataSource": filepath.Join(dir, "db"), // bbolt: a file
		},
		"authority": map[string]any{
			"provisioners": []any{map[string]any{
				"type": "JWK",
				"name": stationName,
				"key":  ca.stationPublic,
			}},
		},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "ca.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return nil, err
	}
	s, err := startProcess(serverStepCA, bin, filepath.Join(work, "step-ca.log"),
		"--password-file", ca.passwordPath, cfgPath)
	if err != nil {
		return nil, err
	}
	s.url = "https://" + addr
	s.version = stepCAVersion(bin)
	return s, nil
}

// healthClient is a short-lived client for readiness checks.
func healthClient(ca *caMaterial) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.rootPool, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
	}
}
