//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// raiseFileLimit sets this process's open-file limit to its hard limit,
// which the brokers it starts inherit (Go restores the original soft limit
// in children unless the program sets it itself), and checks that it allows
// need descriptors.
func raiseFileLimit(need int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("read the open-file limit: %w", err)
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("raise the open-file limit: %w", err)
	}
	if l.Cur < uint64(need) {
		return fmt.Errorf("the open-file limit is %d; -n needs about %d\nhint: raise the hard limit (ulimit -Hn, /etc/security/limits.conf) or lower -n", l.Cur, need)
	}
	return nil
}
