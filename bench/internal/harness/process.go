package harness

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/gwpki/gwpki/bench/internal/proc"
)

// Process is a long-running child of a harness (a server, a simulator),
// its output kept in a log file.
type Process struct {
	Name    string
	LogPath string

	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
	stopped bool
}

// StartProcess starts bin with args, env added to its environment, its
// stdout and stderr written to logPath and, when tee is not nil, to tee as
// well (from one goroutine, so tee need not be safe for concurrent use).
// The kernel kills it if the harness dies.
func StartProcess(name, bin, logPath string, env []string, tee io.Writer, args ...string) (*Process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	var out io.Writer = logFile
	if tee != nil {
		out = io.MultiWriter(logFile, tee)
	}
	// The same writer for both: exec copies them with a single goroutine.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = proc.SysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process's id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to grace, then sends SIGKILL. Calling it
// again does nothing.
func (p *Process) Stop(grace time.Duration) error {
	if p.stopped || p.Exited() {
		p.stopped = true
		return nil
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.Name, grace)
}

// Failure describes a process that failed, with the end of its log.
func (p *Process) Failure(what string) error {
	state := "still running"
	if p.Exited() {
		state = fmt.Sprintf("exited: %v", p.waitErr)
	}
	return fmt.Errorf("%s %s (%s); last lines of %s:\n%s", p.Name, what, state, p.LogPath, Tail(p.LogPath, 15))
}
