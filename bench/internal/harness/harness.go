// Package harness holds what the benchmark harnesses under bench/ share:
// finding the repository, building gwpki, running a command with its output
// kept in a log, free ports, percentiles and the load average.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// ModuleRoot finds the gwpki repository root from the working directory up.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/gwpki/gwpki\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the gwpki repository")
		}
		dir = parent
	}
}

// Tail returns the last n lines of the file at path.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return LastLines(string(b), n)
}

// LastLines returns the last n lines of s, indented for an error message.
func LastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, "  "+sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort asks the kernel for a free TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Percentile returns the nearest-rank p-quantile of sorted latencies.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// LoadAvg returns the first three fields of /proc/loadavg: the machine is
// shared, and a busy one skews the numbers.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// RunQuiet runs a command, keeping its output in logPath; on failure the
// error carries the end of that output. It returns the command's stdout.
func RunQuiet(ctx context.Context, logPath string, env []string, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout bytes.Buffer
	both := &lockedBuffer{}
	// Two goroutines copy stdout and stderr into both at once.
	cmd.Stdout = io.MultiWriter(&stdout, both)
	cmd.Stderr = both
	err := cmd.Run()
	if werr := os.WriteFile(logPath, both.Bytes(), 0o600); werr != nil && err == nil {
		return nil, werr
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, LastLines(both.String(), 15))
	}
	return stdout.Bytes(), nil
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Bytes() }

func (l *lockedBuffer) String() string { return string(l.Bytes()) }

// BuildGwpki builds ./cmd/gwpki of the module at root into dir.
func BuildGwpki(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "gwpki")
	version := "bench"
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output(); err == nil {
		version = strings.TrimSpace(string(out))
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "-ldflags", "-X main.version="+version, "./cmd/gwpki")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build gwpki: %w\n%s", err, out)
	}
	return bin, nil
}

// Host describes the machine a run was made on, for the results file.
type Host struct {
	CPU   string `json:"cpu"`
	CPUs  int    `json:"cpus"`
	OS    string `json:"os"`
	Go    string `json:"go"`
	Notes string `json:"notes"`
}

// NewHost describes this machine; notes says how the run shared it.
func NewHost(notes string) Host {
	return Host{CPU: cpuModel(), CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(), Notes: notes}
}

// cpuModel reads the processor's name from /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// Target is one of an issue's targets and whether the run met it.
type Target struct {
	What string  `json:"what"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Met  bool    `json:"met"`
}

// WriteResults stores v as JSON in dir/<name>-<date>.json and returns the path.
func WriteResults(dir, name string, date time.Time, v any) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name+"-"+date.Format("20060102-150405")+".json")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// WaitHealthy polls GET <httpURL>/healthz until it answers 200, for at most
// timeout. exited reports whether the server process has ended, which ends
// the wait at once. The error says why it is not healthy, for the caller
// to put beside the server's log.
func WaitHealthy(ctx context.Context, httpURL string, timeout time.Duration, exited func() bool) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if exited() {
			return errors.New("exited before it was healthy")
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpURL+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /healthz: %s: %s", resp.Status, bytes.TrimSpace(body))
		}
		lastErr = err
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not healthy after %s: %v", timeout, lastErr)
}
