package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"
	"github.com/gwpki/gwpki/bench/internal/proc"
)

const (
	// startTimeout bounds how long a broker may take to become ready.
	startTimeout = 60 * time.Second
	// stopTimeout is how long a broker gets after SIGTERM before SIGKILL.
	stopTimeout = 15 * time.Second
)

// process is a running broker: gwpki serve or mosquitto.
type process struct {
	name    string
	logPath string

	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
	stopped bool
}

// startProcess starts bin with args, its output in logPath, env added to
// its environment; the kernel kills it if the harness dies.
func startProcess(name, bin, logPath string, env []string, args ...string) (*process, error) {
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
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// cpuTime is the CPU time (user and system, all threads) used so far.
func (p *process) cpuTime() (time.Duration, error) { return proc.ProcessCPUTime(p.pid()) }

// memory is the resident memory now and at its peak.
func (p *process) memory() (proc.Memory, error) { return proc.ProcessMemory(p.pid()) }

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to stopTimeout, then sends SIGKILL.
func (p *process) stop() error {
	if p.stopped {
		return nil
	}
	p.stopped = true
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.name, stopTimeout)
}

// failure describes a process that did not start, with the end of its log.
func (p *process) failure(what string) error {
	state := "still running"
	if p.exited() {
		state = fmt.Sprintf("exited: %v", p.waitErr)
	}
	return fmt.Errorf("%s %s (%s); last lines of %s:\n%s", p.name, what, state, p.logPath, harness.Tail(p.logPath, 15))
}
