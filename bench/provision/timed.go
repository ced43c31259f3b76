package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gwpki/gwpki/bench/internal/harness"

	"github.com/gwpki/gwpki/bench/internal/proc"
)

// batch is one run of gateways: serials PREFIX + 6 digits from start.
type batch struct {
	prefix string
	start  int
	count  int
	conc   int    // gwpki provision --concurrency; 0 for the shell loop
	label  string // gwpki provision --label, "" for none
	out    string // output directory, relative to the work directory
}

// serials are the batch's gateway serials, as gwpki provision
// --serial-prefix makes them.
func (b batch) serials() []string {
	s := make([]string, b.count)
	for i := range s {
		s[i] = fmt.Sprintf("%s%06d", b.prefix, b.start+i)
	}
	return s
}

// window is what was measured while one timed command ran.
type window struct {
	wall      time.Duration // from start to exit of the command
	cmdCPU    time.Duration // the command's CPU, its waited-for children included
	cmdSys    time.Duration // of which in the kernel
	serverCPU time.Duration
	serverOK  bool
	selfCPU   time.Duration // this program's
	busy      time.Duration // every processor's busy time
	busyOK    bool
	loadAvg   string // /proc/loadavg before
	stdout    []byte
}

// timeCommand runs bin with args (env added to the environment, stderr to
// logPath) to its end and measures its wall time and the CPU it, the server
// and the rest of the machine used meanwhile.
func timeCommand(ctx context.Context, srv *server, logPath string, env []string, bin string, args ...string) (*window, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = proc.SysProcAttr()

	w := &window{loadAvg: harness.LoadAvg()}
	cpu0, cpuErr0 := srv.cpuTime()
	self0 := proc.SelfCPUTime()
	busy0, busyErr0 := proc.MachineBusyTime()
	start := time.Now()
	err = cmd.Run()
	w.wall = time.Since(start)
	cpu1, cpuErr1 := srv.cpuTime()
	self1 := proc.SelfCPUTime()
	busy1, busyErr1 := proc.MachineBusyTime()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s %s: %w; last lines of %s:\n%s",
			filepath.Base(bin), strings.Join(args, " "), err, logPath, harness.Tail(logPath, 15))
	}
	w.stdout = stdout.Bytes()
	if ps := cmd.ProcessState; ps != nil {
		// wait4's usage: the command's own and that of the children it
		// waited for (the step processes of the shell loop).
		w.cmdCPU = ps.UserTime() + ps.SystemTime()
		w.cmdSys = ps.SystemTime()
	}
	w.serverCPU, w.serverOK = cpu1-cpu0, cpuErr0 == nil && cpuErr1 == nil
	w.selfCPU = self1 - self0
	w.busy, w.busyOK = busy1-busy0, busyErr0 == nil && busyErr1 == nil
	return w, nil
}

// fill sets r's wall time, rate and CPU figures from w, for gateways
// provisioned.
func (r *result) fill(w *window, gateways int) {
	wall := w.wall.Seconds()
	r.Gateways = gateways
	r.WallSeconds = wall
	r.GatewaysPerSec = float64(gateways) / wall
	r.LoadAvg = w.loadAvg
	r.ClientCPUCores = w.cmdCPU.Seconds() / wall
	r.ClientCPUPerGatewayMS = ms(w.cmdCPU) / float64(gateways)
	r.ClientSysPerGatewayMS = ms(w.cmdSys) / float64(gateways)
	if w.serverOK {
		r.ServerCPUCores = w.serverCPU.Seconds() / wall
		r.ServerCPUPerGatewayMS = ms(w.serverCPU) / float64(gateways)
	}
	if w.busyOK && w.serverOK {
		// What the rest of the machine used meanwhile: on a shared machine,
		// the CPU the server and the command did not get.
		r.OtherCPUCores = max(0, (w.busy-w.serverCPU-w.cmdCPU-w.selfCPU).Seconds()/wall)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
