package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"
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
	return fmt.Errorf("%s %s (%s); last lines of %s:\n%s", s.name, what, state, s.logPath, harness.Tail(s.logPath, 15))
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
