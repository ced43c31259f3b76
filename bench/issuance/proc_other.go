//go:build !linux

package main

import (
	"errors"
	"syscall"
	"time"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func processCPUTime(int) (time.Duration, error) {
	return 0, errors.New("process CPU time is read from /proc on Linux only")
}

func selfCPUTime() time.Duration { return 0 }

func machineBusyTime() (time.Duration, error) {
	return 0, errors.New("machine CPU time is read from /proc on Linux only")
}
