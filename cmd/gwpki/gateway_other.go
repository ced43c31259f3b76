//go:build !unix

package main

func notifyButton(press func()) (stop func()) { return func() {} }

func buttonSignalHint() string { return "" }

func checkFileLimit(n int) string { return "" }
