//go:build !linux

package proc

import "errors"

// RSSParts splits a process's resident memory, from /proc/PID/status.
type RSSParts struct {
	Anon, File, Shmem int64 // bytes
}

// ProcessRSSParts reads RssAnon, RssFile and RssShmem of pid.
func ProcessRSSParts(int) (RSSParts, error) {
	return RSSParts{}, errors.New("process memory is read from /proc on Linux only")
}
