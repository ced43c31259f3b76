package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
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
	url     string // the OCSP base URL, e.g. http://127.0.0.1:PORT/ocsp
	addr    string // host:port the client dials
	logPath string

	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
	stopped bool // stop has run
}

// startProcess starts bin with args and env added to this program's
// environment, its output going to logPath. The process leads a process
// group of its own and is killed if this program dies without stopping it.
func startProcess(name, bin, logPath string, env []string, args ...string) (*server, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = sysProcAttr()
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

// stop sends SIGTERM to the server's process group, waits up to stopTimeout,
// then sends SIGKILL. The group goes too: openssl ocsp -multi forks workers.
func (s *server) stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	pid := s.cmd.Process.Pid
	// Workers left behind, if any, once the leader is gone.
	defer signalGroup(pid, syscall.SIGKILL)
	if s.exited() {
		return nil
	}
	if err := signalGroup(pid, syscall.SIGTERM); err != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-s.done:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	return fmt.Errorf("did not stop within %s of SIGTERM; killed", stopTimeout)
}

// cpuTime is the CPU time (user and system, all threads, forked workers
// included) the server used so far.
func (s *server) cpuTime() (time.Duration, error) {
	return processTreeCPUTime(s.cmd.Process.Pid)
}

// failure describes a server that did not start, with the end of its log.
func (s *server) failure(what string) error {
	state := "still running"
	if s.exited() {
		state = fmt.Sprintf("exited: %v", s.waitErr)
	}
	return fmt.Errorf("%s %s (%s); last lines of %s:\n%s", s.name, what, state, s.logPath, tail(s.logPath, 15))
}

// waitReady sends probe (a real OCSP request: openssl ocsp wedges on a
// connection closed before its request line, so no bare connect is ever
// made) until it gets a successful OCSP answer, the process exits, or
// startTimeout passes.
func (s *server) waitReady(ctx context.Context, probe []byte) error {
	deadline := time.Now().Add(startTimeout)
	c := newRawConn(s.addr, 5*time.Second)
	defer c.close()
	var lastErr error
	for time.Now().Before(deadline) {
		if s.exited() {
			return s.failure("exited before it answered")
		}
		r, err := c.do(probe)
		switch {
		case err != nil:
			lastErr = err
		case r.status != 200:
			lastErr = fmt.Errorf("HTTP status %d", r.status)
		case !ocspSuccessful(r.body):
			lastErr = fmt.Errorf("OCSP answer %x is not successful", r.body[:min(len(r.body), 16)])
		default:
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s.failure(fmt.Sprintf("did not answer in %s: %v", startTimeout, lastErr))
}

// freePort asks the kernel for a free TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// runQuiet runs a command, keeping its output in logPath; on failure the
// error carries the end of that output. It returns the command's stdout.
func runQuiet(ctx context.Context, logPath string, env []string, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, both bytes.Buffer
	cmd.Stdout = io.MultiWriter(&stdout, &both)
	cmd.Stderr = &both
	err := cmd.Run()
	if werr := os.WriteFile(logPath, both.Bytes(), 0o600); werr != nil && err == nil {
		return nil, werr
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, lastLines(both.String(), 15))
	}
	return stdout.Bytes(), nil
}

// moduleRoot finds the gwpki repository root from the working directory up.
func moduleRoot() (string, error) {
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

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
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
