package crl

import "errors"

// ErrRunning is returned by [Builder.Run] when the builder is already
// running: one Run at a time owns the rebuilds.
var ErrRunning = errors.New("crl builder is already running")
