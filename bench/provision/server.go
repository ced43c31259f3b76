package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	// startTimeout bounds how long gwpki serve may take to become ready.
	startTimeout = 60 * time.Second
	// stopTimeout is how long the server gets after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
	// stationName is the station the batches provision through.
	stationName = "bench"
)

// server is a running `gwpki serve`.
type server struct {
	version string
	apiURL  string // https://127.0.0.1:PORT
	httpURL string // http://127.0.0.1:PORT
	logPath string

	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
	stopped bool
}

// readyInfo is what `gwpki serve --ready-file` writes once it listens.
type readyInfo struct {
	APIURL  string `json:"api_url"`
	HTTPURL string `json:"http_url"`
	PID     int    `json:"pid"`
}

// buildGwpki builds ./cmd/gwpki of the module at root into dir.
func buildGwpki(ctx context.Context, root, dir, version string) (string, error) {
	bin := filepath.Join(dir, "gwpki")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "-ldflags", "-X main.version="+version, "./cmd/gwpki")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build gwpki: %w\n%s", err, out)
	}
	return bin, nil
}

// gwpkiVersion is the last word of `gwpki --version`.
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

// hasFlag reports whether `bin args... --help` mentions flag.
func hasFlag(ctx context.Context, bin, flag string, args ...string) bool {
	out, _ := exec.CommandContext(ctx, bin, append(args, "--help")...).CombinedOutput()
	return bytes.Contains(out, []byte(flag))
}

// initGwpki creates gwpki's data directory and the "bench" station:
// dataDir/station.json and its private JWK dataDir/bench.jwk.
func initGwpki(ctx context.Context, bin, dataDir, work string) error {
	if _, err := harness.RunQuiet(ctx, filepath.Join(work, "gwpki-init.log"), nil, bin,
		"init", "--dir", dataDir, "--hostname", "127.0.0.1"); err != nil {
		return err
	}
	_, err := harness.RunQuiet(ctx, filepath.Join(work, "gwpki-station.log"), nil, bin,
		"station", "add", stationName, "--dir", dataDir,
		"--out", filepath.Join(dataDir, "station.json"), "--jwk", filepath.Join(dataDir, stationName+".jwk"))
	return err
}

// startGwpki starts `gwpki serve` on loopback ports chosen by the kernel,
// with env added to its environment (GWPKI_CPUPROFILE), and waits for its
// ready file and GET /healthz.
func startGwpki(ctx context.Context, bin, dataDir, work string, env []string) (*server, error) {
	readyFile := filepath.Join(work, "gwpki-ready.json")
	os.Remove(readyFile)
	args := []string{"serve", "--dir", dataDir,
		"--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ready-file", readyFile}
	if hasFlag(ctx, bin, "--mqtt-addr", "serve") {
		// Never take the default MQTT port another gwpki on this machine may use.
		args = append(args, "--mqtt-addr", "127.0.0.1:0")
	}
	logPath := filepath.Join(work, "gwpki-serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = proc.SysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start gwpki serve: %w", err)
	}
	s := &server{logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(s.done)
	}()
	s.version = gwpkiVersion(ctx, bin)

	deadline := time.Now().Add(startTimeout)
	for {
		var info readyInfo
		b, err := os.ReadFile(readyFile)
		if err == nil && json.Unmarshal(b, &info) == nil && info.APIURL != "" && info.HTTPURL != "" {
			s.apiURL = strings.TrimSuffix(info.APIURL, "/")
			s.httpURL = strings.TrimSuffix(info.HTTPURL, "/")
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
	if err := s.waitHealthy(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// waitHealthy polls GET <http_url>/healthz until it answers 200.
func (s *server) waitHealthy(ctx context.Context) error {
	if err := harness.WaitHealthy(ctx, s.httpURL, startTimeout, s.exited); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return s.failure(err.Error())
	}
	return nil
}

// cpuTime is the CPU time (user and system, all threads) the server used so
// far.
func (s *server) cpuTime() (time.Duration, error) { return proc.ProcessCPUTime(s.cmd.Process.Pid) }

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
	if s.stopped {
		return nil
	}
	s.stopped = true
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
	return fmt.Errorf("gwpki serve did not stop within %s of SIGTERM; killed", stopTimeout)
}

// failure describes a server that did not start, with the end of its log.
func (s *server) failure(what string) error {
	state := "still running"
	if s.exited() {
		state = fmt.Sprintf("exited: %v", s.waitErr)
	}
	return fmt.Errorf("gwpki serve %s (%s); last lines of %s:\n%s", what, state, s.logPath, harness.Tail(s.logPath, 15))
}

// gitDescribe is `git describe --always --dirty` of the repository at root.
func gitDescribe(ctx context.Context, root string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
