//go:build !linux

package proc

import "errors"

// Memory is a process's resident memory, from /proc/PID/status.
type Memory struct {
	RSS  int64 // VmRSS: resident now, in bytes
	Peak int64 // VmHWM: the most ever resident, in bytes
}

// ProcessMemory reads VmRSS and VmHWM of pid.
func ProcessMemory(int) (Memory, error) {
	return Memory{}, errors.New("process memory is read from /proc on Linux only")
}
