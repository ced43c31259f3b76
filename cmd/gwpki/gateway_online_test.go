package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/gateway"
	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/telemetry"
)

// console follows a running command's output line by line.
type console struct {
	mu    sync.Mutex
	lines []string
	more  chan struct{}
}

func follow(r io.Reader) *console {
	c := &console{more: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
			select {
			case c.more <- struct{}{}:
			default:
			}
		}
	}()
	return c
}

// await waits until a line after the first `from` lines matches re, and
// returns the number of lines seen up to and including it.
func (c *console) await(t *testing.T, from int, re string, d time.Duration) int {
	t.Helper()
	pat := regexp.MustCompile(re)
	deadline := time.After(d)
	for {
		c.mu.Lock()
		for i := from; i < len(c.lines); i++ {
			if pat.MatchString(c.lines[i]) {
				c.mu.Unlock()
				return i + 1
			}
		}
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("no line matching %q within %v; console:\n%s", re, d, strings.Join(c.lines, "\n"))
		}
	}
}

// TestGatewayAgentAgainstTheServer runs `gwpki gateway run` against a real
// `gwpki serve`: it bootstraps, shows its claim code, publishes telemetry
// that operators read, learns it was claimed on cmd/claimed, reports its
// claim button over its own MQTT connection, and after an unclaim (its
// operational certificate revoked) bootstraps again and carries on.
func TestGatewayAgentAgainstTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the server and an agent")
	}
	bin := gwpkiBinary(t)
	dir := filepath.Join(t.TempDir(), "d")
	run(t, bin, "init", "--dir", dir, "--hostname", "127.0.0.1")
	stationFile := filepath.Join(t.TempDir(), "station.json")
	run(t, bin, "station", "add", "line1", "--dir", dir, "--out", stationFile)
	_, ready := startServe(t, bin, dir)
	out := filepath.Join(t.TempDir(), "out")
	run(t, bin, "provision", "--ca", ready.APIURL, "--root", ca.Layout{Dir: dir}.RootCert(), "--station", stationFile,
		"--out", out, "--serial-prefix", "AG-", "--count", "3")
	bundleDir := filepath.Join(out, "AG-000001")

	agent := exec.Command(bin, "gateway", "run", "--bundle", bundleDir, "--interval", "100ms")
	stdout, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	agent.Stderr = os.Stderr
	stdin, err := agent.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	con := follow(stdout)
	n := con.await(t, 0, `bootstrapped: operational certificate`, 30*time.Second)
	n = con.await(t, 0, `claim code: [0-9A-Z]{4}-[0-9A-Z]{4}-.`, 30*time.Second)
	n = con.await(t, n, `connected to mqtts://127\.0\.0\.1:`, 30*time.Second)
	if _, err := os.Stat(filepath.Join(bundleDir, "operational.crt")); err != nil {
		t.Fatalf("no operational.crt in the bundle: %v", err)
	}

	// Its telemetry is stored and readable by the admin.
	adminPassword, _ := os.ReadFile(ca.Layout{Dir: dir}.AdminPassword())
	admin := apiLogin(t, dir, ready.APIURL, "admin", strings.TrimSpace(string(adminPassword)))
	deadline := time.Now().Add(20 * time.Second)
	for {
		var page telemetry.Page
		apiGet(t, dir, ready.APIURL+"/v1/devices/AG-000001/telemetry?topic=gw/AG-000001/telemetry", admin, &page)
		if len(page.Messages) >= 3 {
			if !strings.Contains(string(page.Messages[0].Payload), `"flow_m3h"`) {
				t.Errorf("telemetry %s has no flow", page.Messages[0].Payload)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d telemetry messages stored after 20 s; want 3", len(page.Messages))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Claimed with the code it shows: it learns it on cmd/claimed.
	b, err := gateway.LoadBundle(bundleDir)
	if err != nil {
		t.Fatal(err)
	}
	apiPostOK(t, dir, ready.APIURL+"/v1/users", admin, `{"username":"ina","org":"acme","role":"installer","password":"ina password"}`)
	apiPostOK(t, dir, ready.APIURL+"/v1/users", admin, `{"username":"olga","org":"acme","role":"operator","password":"olga password"}`)
	ina := apiLogin(t, dir, ready.APIURL, "ina", "ina password")
	apiPostOK(t, dir, ready.APIURL+"/v1/claims", ina, fmt.Sprintf(`{"serial":"AG-000001","code":%q}`, b.DisplayCode(time.Now())))
	n = con.await(t, n, `^AG-000001: claimed$|claimed$`, 20*time.Second)

	// The claim button, pressed at its console, goes over its MQTT
	// connection and is audited as the gateway's.
	if _, err := io.WriteString(stdin, "\n"); err != nil {
		t.Fatal(err)
	}
	n = con.await(t, n, `claim button reported over MQTT`, 20*time.Second)
	olga := apiLogin(t, dir, ready.APIURL, "olga", "olga password")
	deadline = time.Now().Add(10 * time.Second)
	for {
		var page audit.Page
		apiGet(t, dir, ready.APIURL+"/v1/audit?action=unlock&actor=gateway:AG-000001", olga, &page)
		if len(page.Entries) == 1 && page.Entries[0].Detail["via"] == "claim-button" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no claim button unlock in the audit log: %+v", page.Entries)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Unclaimed by its operator: the operational certificate is revoked, the
	// session dropped; the agent bootstraps again and reconnects.
	apiPostOK(t, dir, ready.APIURL+"/v1/devices/AG-000001/unclaim", olga, "")
	n = con.await(t, n, `bootstrapped: operational certificate`, 60*time.Second)
	con.await(t, n, `connected to mqtts://`, 30*time.Second)
	con.await(t, n, `claim code: `, 30*time.Second)

	// Interrupted, it says goodbye and exits cleanly.
	agent.Process.Signal(syscall.SIGINT)
	if err := agent.Wait(); err != nil {
		t.Errorf("gateway run after SIGINT: %v", err)
	}
}

// TestGatewaySimAgainstTheServer runs two agents in one process with
// `gwpki gateway sim` against a real server.
func TestGatewaySimAgainstTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the server and agents")
	}
	bin := gwpkiBinary(t)
	dir := filepath.Join(t.TempDir(), "d")
	run(t, bin, "init", "--dir", dir, "--hostname", "127.0.0.1")
	stationFile := filepath.Join(t.TempDir(), "station.json")
	run(t, bin, "station", "add", "line1", "--dir", dir, "--out", stationFile)
	_, ready := startServe(t, bin, dir)
	out := filepath.Join(t.TempDir(), "out")
	run(t, bin, "provision", "--ca", ready.APIURL, "--root", ca.Layout{Dir: dir}.RootCert(), "--station", stationFile,
		"--out", out, "--serial-prefix", "SIM-", "--count", "3")
	sim := exec.Command(bin, "gateway", "sim", "--bundles", out, "--count", "2", "--interval", "200ms", "--summary-every", "1s")
	stdout, _ := sim.StdoutPipe()
	stderr, _ := sim.StderrPipe()
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Process.Kill(); sim.Wait() })
	con := follow(stdout)
	summary := follow(stderr)
	con.await(t, 0, `SIM-000001.*connected to mqtts://`, 30*time.Second)
	con.await(t, 0, `SIM-000002.*connected to mqtts://`, 30*time.Second)
	summary.await(t, 0, `2 connected`, 30*time.Second)
	con.mu.Lock()
	defer con.mu.Unlock()
	if strings.Contains(strings.Join(con.lines, "\n"), "SIM-000003") {
		t.Error("--count 2 ran a third gateway")
	}
}

// apiPostOK posts body to u with token and fails unless the answer is 2xx.
func apiPostOK(t *testing.T, dir, u, token, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := apiClient(t, dir).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s = %d %s", u, resp.StatusCode, b)
	}
}
