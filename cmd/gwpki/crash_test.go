package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/internal/server"
	"github.com/gwpki/gwpki/provisioning"
)

// gwpkiBinary returns a path that runs this test binary as gwpki (see
// TestMain), so the test drives the real command in its own process.
func gwpkiBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "gwpki")
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("gwpki %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// startServe runs gwpki serve on loopback ports and waits until it listens.
func startServe(t *testing.T, bin, dir string) (*exec.Cmd, server.Ready) {
	t.Helper()
	ready := filepath.Join(dir, "ready.json")
	os.Remove(ready)
	cmd := exec.Command(bin, "serve", "--dir", dir, "--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ready-file", ready)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		var r server.Ready
		if b, err := os.ReadFile(ready); err == nil && json.Unmarshal(b, &r) == nil {
			return cmd, r
		}
		if time.Now().After(deadline) {
			t.Fatalf("gwpki serve not ready after 60s:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCrashKeepsAnsweredCertificates kills gwpki serve with SIGKILL in the
// middle of a burst of issuances: every certificate that was answered must
// be in the store afterwards, the bbolt file must be consistent, and the
// server must start again on it.
func TestCrashKeepsAnsweredCertificates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server twice")
	}
	bin := gwpkiBinary(t)
	dir := filepath.Join(t.TempDir(), "d")
	run(t, bin, "init", "--dir", dir, "--hostname", "127.0.0.1")
	stationFile := filepath.Join(t.TempDir(), "station.json")
	run(t, bin, "station", "add", "line1", "--dir", dir, "--out", stationFile)
	station, err := provisioning.LoadStation(stationFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd, ready := startServe(t, bin, dir)

	// Prepare the burst before it starts, so the server is killed mid-way
	// through issuing rather than while the client is busy.
	const total, workers, killAfter = 4000, 32, 300
	bodies := make([][]byte, total)
	for i := range bodies {
		serial := fmt.Sprintf("CRASH-%05d", i)
		_, csr, err := provisioning.NewGatewayKey(serial)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := station.Token(serial, provisioning.SignURL(ready.APIURL), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		bodies[i], _ = json.Marshal(map[string]string{"csr": string(csr), "ott": tok})
	}
	client := apiClient(t, dir)

	var mu sync.Mutex
	var answered []string
	killed := make(chan struct{})
	var killOnce sync.Once
	jobs := make(chan []byte)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range jobs {
				serial, err := issue(client, ready.APIURL, body)
				if err != nil {
					continue // refused or cut off by the kill: not answered
				}
				mu.Lock()
				answered = append(answered, serial)
				n := len(answered)
				mu.Unlock()
				if n == killAfter {
					killOnce.Do(func() {
						cmd.Process.Signal(syscall.SIGKILL)
						close(killed)
					})
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
feed:
	for _, b := range bodies {
		select {
		case jobs <- b:
		case <-killed:
			// Keep feeding for a moment so requests are in flight at the kill.
			break feed
		case <-ctx.Done():
			t.Fatal("burst did not reach the kill point in 2 minutes")
		}
	}
	close(jobs)
	wg.Wait()
	cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(answered) < killAfter {
		t.Fatalf("only %d certificates answered; the kill never happened", len(answered))
	}

	if out := run(t, bin, "db", "check", "--dir", dir); !bytes.Contains([]byte(out), []byte("is consistent")) {
		t.Fatalf("db check: %s", out)
	}
	var stored []struct {
		Serial string `json:"serial"`
	}
	if err := json.Unmarshal([]byte(run(t, bin, "db", "certs", "--dir", dir, "--provisioner", "line1", "--json")), &stored); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, c := range stored {
		have[c.Serial] = true
	}
	for _, s := range answered {
		if !have[s] {
			t.Errorf("certificate %s was answered but is not in the store after SIGKILL", s)
		}
	}
	t.Logf("answered %d certificates before SIGKILL; store holds %d", len(answered), len(stored))

	// The server starts again on the same directory and keeps issuing.
	_, ready = startServe(t, bin, dir)
	tok, err := station.Token("AFTER-CRASH", provisioning.SignURL(ready.APIURL), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, csr, _ := provisioning.NewGatewayKey("AFTER-CRASH")
	body, _ := json.Marshal(map[string]string{"csr": string(csr), "ott": tok})
	if _, err := issue(apiClient(t, dir), ready.APIURL, body); err != nil {
		t.Fatalf("issue after restart: %v", err)
	}
}

func apiClient(t *testing.T, dir string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	root, err := os.ReadFile(ca.Layout{Dir: dir}.RootCert())
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(root)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 64,
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}

// issue posts a sign request and returns the issued certificate's serial.
func issue(c *http.Client, apiURL string, body []byte) (string, error) {
	resp, err := c.Post(apiURL+"/1.0/sign", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Crt string `json:"crt"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	block, _ := pem.Decode([]byte(out.Crt))
	if block == nil {
		return "", fmt.Errorf("no certificate in the answer")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", err
	}
	return cert.SerialNumber.String(), nil
}
