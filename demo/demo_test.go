package demo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The whole story, passing, runs through the binary in
// cmd/gwpki/testdata/script/demo.txtar. These tests cover how it fails.

// A step that fails ends the story with an error (exit status 1 in gwpki
// demo), names the failure, stops what was started and keeps the directory.
func TestRunFailsAndKeepsItsDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "story")
	var out bytes.Buffer
	// Too short for the server to come up: step 1 fails waiting for it.
	err := Run(context.Background(), Options{Out: &out, Dir: dir, Timeout: 50 * time.Millisecond})
	if err == nil {
		t.Fatalf("Run passed with a 50ms budget:\n%s", out.String())
	}
	for _, want := range []string{"✗ ", "The demo failed at step 1", "Kept " + dir} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "checks passed in") {
		t.Errorf("a failed run claims success:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "demo.log")); err != nil {
		t.Errorf("the failed run's log is gone: %v", err)
	}
}

func TestRunRefusesADirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Run on a non-empty directory: %v; want refused", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "precious")); err != nil || string(b) != "x" {
		t.Fatalf("the directory's file changed: %q, %v", b, err)
	}
}
