package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// File creation on ext4 without a journal (this benchmark's virtual machine)
// costs about 30 µs of CPU, but ten to twenty times that for a few minutes
// after many files were deleted: the inode allocator skips, one by one, the
// inodes freed in the last 60 seconds (360 while their inode table block is
// not written back; recently_deleted in fs/ext4/ialloc.c). gwpki provision
// creates five to six files per gateway, so a run after `go test` or after
// the previous run's clean-up measures the file system, not gwpki. The
// harness measures the cost before each timed command and waits for it to
// fall.
const (
	probeFiles      = 200                    // files created per probe
	createThreshold = 100 * time.Microsecond // CPU per file above which the file system is "slow"
	probeInterval   = 15 * time.Second
)

// fsProbe measures file creation in a directory of its own under dir.
type fsProbe struct {
	dir string
	n   int // probes so far
}

// cost creates probeFiles files of 100 bytes in a new directory and returns
// this program's CPU time per file; 0 where it cannot be measured. The
// files stay: deleting them would slow the next creations.
func (p *fsProbe) cost() (time.Duration, error) {
	p.n++
	dir := filepath.Join(p.dir, fmt.Sprint(p.n))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	data := make([]byte, 100)
	cpu0 := selfCPUTime()
	for i := range probeFiles {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), data, 0o600); err != nil {
			return 0, err
		}
	}
	return (selfCPUTime() - cpu0) / probeFiles, nil
}

// wait probes until a file creation costs at most createThreshold of CPU,
// or maxWait has passed, and returns the last cost measured.
func (p *fsProbe) wait(ctx context.Context, maxWait time.Duration, logf func(string, ...any)) (time.Duration, error) {
	deadline := time.Now().Add(maxWait)
	for {
		c, err := p.cost()
		if err != nil || c <= createThreshold {
			return c, err
		}
		if !time.Now().Before(deadline) {
			logf("file creation still costs %s of CPU (want at most %s); measuring anyway", c.Round(time.Microsecond), createThreshold)
			return c, nil
		}
		logf("file creation costs %s of CPU (want at most %s: files were deleted in the last minutes); waiting",
			c.Round(time.Microsecond), createThreshold)
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(min(probeInterval, time.Until(deadline))):
		}
	}
}
