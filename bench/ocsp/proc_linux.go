package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// sysProcAttr puts a server in a process group of its own, so that it and
// the workers it forks (openssl ocsp -multi) are stopped together, and makes
// the kernel kill it if this program dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}

// procStat is what is read from /proc/PID/stat.
type procStat struct {
	ppid int
	cpu  time.Duration // utime + stime + cutime + cstime
}

func readProcStat(path string) (procStat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) may hold spaces; fields after it are plain.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse %s", path)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("parse %s", path)
	}
	// f[0] is field 3 (state): ppid is field 4, utime, stime, cutime and
	// cstime are fields 14 to 17.
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("parse %s: %w", path, err)
	}
	var ticks int64
	for _, v := range f[11:15] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("parse %s: %w", path, err)
		}
		ticks += n
	}
	return procStat{ppid: ppid, cpu: time.Duration(ticks) * time.Second / clockTicks}, nil
}

// processTreeCPUTime returns the CPU time (user and system, all threads) of
// pid and of every live descendant, each including what its reaped children
// used: openssl ocsp -multi answers in forked workers. A worker that exits
// and is reaped moves its time into its parent's, so the sum stays
// continuous.
func processTreeCPUTime(pid int) (time.Duration, error) {
	root, err := readProcStat(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	stats := make(map[int]procStat, len(paths))
	for _, p := range paths {
		n, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || n == pid {
			continue
		}
		if st, err := readProcStat(p); err == nil {
			stats[n] = st
		}
	}
	total := root.cpu
	for n, st := range stats {
		// Walk up: is pid an ancestor of n?
		for p, depth := st.ppid, 0; p > 1 && depth < 64; depth++ {
			if p == pid {
				total += stats[n].cpu
				break
			}
			parent, ok := stats[p]
			if !ok {
				break
			}
			p = parent.ppid
		}
	}
	return total, nil
}

// selfCPUTime returns this program's user plus system CPU time.
func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusyTime returns the CPU time all processors have spent busy (not
// idle nor waiting for I/O) since boot, from /proc/stat.
func machineBusyTime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("parse /proc/stat")
	}
	var busy int64
	// user nice system idle iowait irq softirq steal ...: skip idle and iowait.
	for i, v := range f[1:min(len(f), 9)] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/stat: %w", err)
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}
