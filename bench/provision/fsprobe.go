package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gwpki/gwpki/bench/internal/proc"
)

// File creation on ext4 without a journal (this benchmark's virtual machine)
// costs about 20 to 40 µs of CPU, but ten to twenty times that for a few minutes
// after many files were deleted: the inode allocator skips, one by one, the
// inodes freed in the last 60 seconds (360 while their inode table block is
// not written back; recently_deleted in fs/ext4/ialloc.c). gwpki provision
// creates five to six files per gateway, so a run after `go test` or after
// the previous run's clean-up measures the file system, not gwpki. The
// harness measures the cost before each timed command and waits for it to
// fall.
const (
	probeDirs       = 50                    // directories of a probe, each with probeFiles files
	probeFiles      = 4                     // as a bundle: key, certificate, root, gateway.json
	createThreshold = 50 * time.Microsecond // CPU per file above which the file system is "slow"
	probeInterval   = 15 * time.Second
)

// fsProbe measures file creation in a directory of its own under dir.
type fsProbe struct {
	dir string
	n   int // probes so far
}

// cost creates probeDirs directories of probeFiles files of 600 bytes
// each, as bundles are, and returns this program's CPU time per file (or
// directory); 0 where it cannot be measured. They stay: deleting them would
// slow the next creations.
func (p *fsProbe) cost() (time.Duration, error) {
	p.n++
	base := filepath.Join(p.dir, fmt.Sprint(p.n))
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return 0, err
	}
	data := make([]byte, 600)
	cpu0 := proc.SelfCPUTime()
	if err := os.Mkdir(base, 0o700); err != nil {
		return 0, err
	}
	for i := range probeDirs {
		dir := filepath.Join(base, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return 0, err
		}
		for j := range probeFiles {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(j)), data, 0o600); err != nil {
				return 0, err
			}
		}
	}
	return (proc.SelfCPUTime() - cpu0) / (probeDirs * (probeFiles + 1)), nil
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
