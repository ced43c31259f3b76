package provisioning

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestTemporary(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"server busy", &APIError{Status: http.StatusTooManyRequests}, true},
		{"server failed", &APIError{Status: http.StatusBadGateway}, true},
		{"refused CSR", &APIError{Status: http.StatusBadRequest}, false},
		{"disabled station", &APIError{Status: http.StatusUnauthorized}, false},
		{"another key", &APIError{Status: http.StatusConflict}, false},
		{"connection refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"reset", syscall.ECONNRESET, true},
		{"timeout", &net.DNSError{IsTimeout: true}, true},
		{"a bug", errors.New("nil map"), false},
	}
	for _, tt := range tests {
		if got := temporary(tt.err); got != tt.want {
			t.Errorf("temporary(%s) = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestRetryStopsOnRefusal(t *testing.T) {
	calls := 0
	err := retry(context.Background(), func() error {
		calls++
		if calls < 3 {
			return &APIError{Status: http.StatusServiceUnavailable}
		}
		return &APIError{Status: http.StatusForbidden}
	})
	var api *APIError
	if !errors.As(err, &api) || api.Status != http.StatusForbidden || calls != 3 {
		t.Errorf("retry = %v after %d calls; want the 403 after 3 calls", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	_ = retry(ctx, func() error { return &APIError{Status: http.StatusServiceUnavailable} })
	if time.Since(start) > time.Second {
		t.Error("retry kept going after its context ended")
	}
}

func TestPlanBatchRefusesBeforeIssuing(t *testing.T) {
	dir := t.TempDir()
	client := &Client{}
	tests := []struct {
		name string
		o    BatchOptions
		want string
	}{
		{"duplicate serial", BatchOptions{Serials: []string{"A", "B", "A"}, Model: "m"}, "listed twice"},
		{"bad serial", BatchOptions{Serials: []string{"A B"}, Model: "m"}, "gateway serial"},
		{"no model", BatchOptions{Serials: []string{"A"}}, "model"},
		{"model with a ZPL prefix", BatchOptions{Serials: []string{"A"}, Model: "x^FS"}, "without ^ or ~"},
		{"unknown label", BatchOptions{Serials: []string{"A"}, Model: "m", Labels: []string{"pdf"}}, "unknown label format"},
		{"missing CSR", BatchOptions{Serials: []string{"A"}, Model: "m", CSRDir: dir}, "no A.csr or A.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Client = client
			tt.o.Out = filepath.Join(dir, "out")
			_, _, err := planBatch(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("planBatch: %v; want an error mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("planBatch made the output directory: %v", err)
	}
}

func TestReadGatewayCSR(t *testing.T) {
	dir := t.TempDir()
	_, csr, err := NewGatewayKey("GW-1")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "GW-1.pem"), csr, 0o644)
	os.WriteFile(filepath.Join(dir, "GW-2.csr"), csr, 0o644) // GW-1's CSR under GW-2's name
	os.WriteFile(filepath.Join(dir, "GW-3.csr"), []byte("not pem"), 0o644)
	if _, err := readGatewayCSR(dir, "GW-1"); err != nil {
		t.Errorf("GW-1: %v", err)
	}
	for serial, want := range map[string]string{"GW-2": "not the serial", "GW-3": "not a PEM"} {
		if _, err := readGatewayCSR(dir, serial); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want an error mentioning %q", serial, err, want)
		}
	}
}
