package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// RSSParts splits a process's resident memory, from /proc/PID/status:
// anonymous pages (heap, stacks: what a leak grows) and file-backed pages
// (the binary, memory-mapped files such as a bbolt database, which grow
// with the file and which the kernel may reclaim).
type RSSParts struct {
	Anon, File, Shmem int64 // bytes
}

// ProcessRSSParts reads RssAnon, RssFile and RssShmem of pid.
func ProcessRSSParts(pid int) (RSSParts, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return RSSParts{}, err
	}
	var r RSSParts
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(k) {
		case "RssAnon":
			dst = &r.Anon
		case "RssFile":
			dst = &r.File
		case "RssShmem":
			dst = &r.Shmem
		default:
			continue
		}
		f := bytes.Fields(v) // "1234 kB"
		if len(f) != 2 || string(f[1]) != "kB" {
			return RSSParts{}, fmt.Errorf("parse %s: %s", path, sc.Text())
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return RSSParts{}, fmt.Errorf("parse %s: %w", path, err)
		}
		*dst = kb << 10
		found++
	}
	if found != 3 {
		return RSSParts{}, fmt.Errorf("parse %s: no RssAnon, RssFile or RssShmem", path)
	}
	return r, nil
}
