//go:build !linux

package proc

import (
	"errors"
	"syscall"
	"time"
)

func SysProcAttr() *syscall.SysProcAttr { return nil }

func ProcessCPUTime(int) (time.Duration, error) {
	return 0, errors.New("process CPU time is read from /proc on Linux only")
}

func SelfCPUTime() time.Duration { return 0 }

func MachineBusyTime() (time.Duration, error) {
	return 0, errors.New("machine CPU time is read from /proc on Linux only")
}
