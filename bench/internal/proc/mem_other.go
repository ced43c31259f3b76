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

// RSSParts splits a process's resident memory, from /proc/PID/status.
type RSSParts struct {
	Anon, File, Shmem int64 // bytes
}

// ProcessRSSParts reads RssAnon, RssFile and RssShmem of pid.
func ProcessRSSParts(int) (RSSParts, error) {
	return RSSParts{}, errors.New("process memory is read from /proc on Linux only")
}
