package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Memory is a process's resident memory, from /proc/PID/status.
type Memory struct {
	RSS  int64 // VmRSS: resident now, in bytes
	Peak int64 // VmHWM: the most ever resident, in bytes
}

// ProcessMemory reads VmRSS and VmHWM of pid.
func ProcessMemory(pid int) (Memory, error) {
	var m Memory
	err := readStatusKB(pid, map[string]*int64{"VmRSS": &m.RSS, "VmHWM": &m.Peak})
	return m, err
}

// RSSParts splits a process's resident memory, from /proc/PID/status:
// anonymous pages (heap, stacks: what a leak grows) and file-backed pages
// (the binary, memory-mapped files such as a bbolt database, which grow
// with the file and which the kernel may reclaim).
type RSSParts struct {
	Anon, File, Shmem int64 // bytes
}

// ProcessRSSParts reads RssAnon, RssFile and RssShmem of pid.
func ProcessRSSParts(pid int) (RSSParts, error) {
	var r RSSParts
	err := readStatusKB(pid, map[string]*int64{"RssAnon": &r.Anon, "RssFile": &r.File, "RssShmem": &r.Shmem})
	return r, err
}

// readStatusKB sets each *fields[key] to the "key: N kB" line of
// /proc/PID/status, in bytes; every key must be there.
func readStatusKB(pid int, fields map[string]*int64) error {
	path := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		dst := fields[string(k)]
		if !ok || dst == nil {
			continue
		}
		f := bytes.Fields(v) // "1234 kB"
		if len(f) != 2 || string(f[1]) != "kB" {
			return fmt.Errorf("parse %s: %s", path, sc.Text())
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return fmt.Errorf("parse %s: %w", path, err)
		}
		*dst = kb << 10
		found++
	}
	if found != len(fields) {
		return fmt.Errorf("parse %s: want %d of its memory lines, found %d", path, len(fields), found)
	}
	return nil
}
