//go:build unix

package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// notifyButton calls press on each SIGUSR1 until stop is called.
func notifyButton(press func()) (stop func()) {
	ch := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(ch, syscall.SIGUSR1)
	go func() {
		for {
			select {
			case <-ch:
				press()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

func buttonSignalHint() string { return fmt.Sprintf(" (or send SIGUSR1 to pid %d)", os.Getpid()) }

// checkFileLimit warns when n gateways (an MQTT connection each, and a
// short HTTPS one at bootstrap and renewal) may run out of file
// descriptors. Go already raised the soft limit to the hard one.
func checkFileLimit(n int) string {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return ""
	}
	if need := uint64(2*n + 64); lim.Cur < need {
		return fmt.Sprintf("sim: warning: %d gateways need about %d file descriptors; the limit is %d (raise it with ulimit -n)", n, need, lim.Cur)
	}
	return ""
}
