//go:build !linux

package main

import (
	"errors"
	"syscall"
	"time"
)

var errNotLinux = errors.New("read from /proc on Linux only")

func sysProcAttr() *syscall.SysProcAttr { return nil }

func processCPUTime(int) (time.Duration, error) { return 0, errNotLinux }

func selfCPUTime() time.Duration { return 0 }

func machineBusyTime() (time.Duration, error) { return 0, errNotLinux }
