package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gwpki/gwpki/gateway/gatewaytest"
)

func TestGatewayRunRefuses(t *testing.T) {
	srv := gatewaytest.New(t)
	out := t.TempDir()
	noKey := srv.WriteBundle(t, out, "GW-000001")
	os.Remove(filepath.Join(noKey, "idevid.key"))
	notJSON := t.TempDir()
	os.WriteFile(filepath.Join(notJSON, "gateway.json"), []byte("{"), 0o600)
	for name, tt := range map[string]struct {
		args []string
		want string
	}{
		"run without --bundle":  {[]string{"gateway", "run"}, "no bundle given"},
		"run, missing bundle":   {[]string{"gateway", "run", "--bundle", filepath.Join(t.TempDir(), "none")}, "read bundle"},
		"run, not a bundle":     {[]string{"gateway", "run", "--bundle", notJSON}, "not a gwpki gateway file"},
		"run, no birth key":     {[]string{"gateway", "run", "--bundle", noKey}, "has no idevid.key"},
		"run, zero interval":    {[]string{"gateway", "run", "--bundle", noKey, "--interval", "0s"}, "--interval 0s is not a positive duration"},
		"run, extra argument":   {[]string{"gateway", "run", "--bundle", noKey, "GW-000001"}, "unknown command"},
		"sim without --bundles": {[]string{"gateway", "sim"}, "no bundles folder given"},
		"sim, empty folder":     {[]string{"gateway", "sim", "--bundles", t.TempDir()}, "no gateway bundles in"},
		"sim, missing folder":   {[]string{"gateway", "sim", "--bundles", filepath.Join(t.TempDir(), "none")}, "read bundles"},
		"sim, negative count":   {[]string{"gateway", "sim", "--bundles", out, "--count", "-1"}, "--count -1 is negative"},
	} {
		if _, stderr, failed := runGwpki(t, "", tt.args...); !failed || !strings.Contains(stderr, tt.want) || !strings.HasPrefix(stderr, "gwpki: ") {
			t.Errorf("%s: failed=%v stderr %q; want gwpki: ... %q", name, failed, stderr, tt.want)
		}
	}
}

// lockedBuffer collects a command's output while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func pressedCount(srv *gatewaytest.Server, serial string) int {
	n := 0
	for _, m := range srv.Messages("gw/" + serial + "/state") {
		if string(m.Payload) == `{"claim_button":"pressed"}` {
			n++
		}
	}
	return n
}

// TestGatewayRunButton runs the real binary: SIGUSR1 and a line on stdin
// each press the claim button, reported on the gateway's MQTT connection;
// SIGTERM stops it cleanly.
func TestGatewayRunButton(t *testing.T) {
	srv := gatewaytest.New(t)
	const serial = "GW-000010"
	dir := srv.WriteBundle(t, t.TempDir(), serial)
	cmd := exec.Command(gwpkiBinary(t), "gateway", "run", "--bundle", dir, "--interval", "200ms")
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	srv.WaitFor(t, 60*time.Second, "want the gateway connected", func() bool {
		return strings.Contains(stdout.String(), serial+" connected to ")
	})
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	srv.WaitFor(t, 20*time.Second, "want a press from SIGUSR1", func() bool { return pressedCount(srv, serial) == 1 })
	srv.WaitFor(t, 20*time.Second, "want the console to say so", func() bool {
		return strings.Contains(stdout.String(), serial+" claim button reported over MQTT")
	})
	stdin.Write([]byte("\n"))
	srv.WaitFor(t, 20*time.Second, "want a press from stdin", func() bool { return pressedCount(srv, serial) == 2 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("gwpki gateway run after SIGTERM: %v\nstderr: %s", err, stderr.String())
	}
	if !regexp.MustCompile(`(?m)^GW-000010 claim code: [0-9A-Z]{4}-[0-9A-Z]{4}-. \(valid until \d\d:\d\d\)$`).MatchString(stdout.String()) {
		t.Errorf("stdout %q; want the claim code line", stdout.String())
	}
	if m := srv.Messages("gw/" + serial + "/state"); string(m[len(m)-1].Payload) != `{"state":"offline"}` {
		t.Errorf("last state %s; want offline after SIGTERM", m[len(m)-1].Payload)
	}
	if !strings.Contains(stderr.String(), "SIGUSR1") {
		t.Errorf("stderr %q; want how to press the button", stderr.String())
	}
}

// TestGatewaySim: the first --count bundles in serial order run in one
// process, their lines prefixed by serial, with summary lines.
func TestGatewaySim(t *testing.T) {
	srv := gatewaytest.New(t)
	out := t.TempDir()
	for _, s := range []string{"GW-000003", "GW-000001", "GW-000002"} {
		srv.WriteBundle(t, out, s)
	}
	os.WriteFile(filepath.Join(out, "labels.txt"), []byte("not a bundle"), 0o644)
	os.MkdirAll(filepath.Join(out, ".pending", "GW-000000"), 0o700)

	root := newRootCommand()
	var stdout, stderr lockedBuffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	stdinR, stdinW, _ := os.Pipe()
	defer stdinW.Close()
	root.SetIn(stdinR)
	root.SetArgs([]string{"gateway", "sim", "--bundles", out, "--count", "2", "--interval", "100ms", "--stagger", "50ms", "--summary-every", "300ms"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	srv.WaitFor(t, 60*time.Second, "want two gateways connected", func() bool { return len(srv.Connections()) >= 2 })
	srv.WaitFor(t, 20*time.Second, "want a summary with both connected", func() bool {
		return strings.Contains(stderr.String(), "sim: 2 gateways, 2 connected, 0 claimed")
	})
	for _, s := range []string{"GW-000001", "GW-000002"} {
		srv.WaitFor(t, 20*time.Second, "want telemetry from "+s, func() bool { return len(srv.Messages("gw/"+s+"/telemetry")) >= 2 })
	}
	stdinW.Write([]byte("GW-000002\nGW-999999\n"))
	srv.WaitFor(t, 20*time.Second, "want GW-000002's button pressed", func() bool { return pressedCount(srv, "GW-000002") == 1 })
	srv.WaitFor(t, 20*time.Second, "want the unknown serial reported", func() bool {
		return strings.Contains(stderr.String(), `sim: no gateway "GW-999999" in this simulation`)
	})
	if err := srv.Broker.Publish("gw/GW-000001/cmd/claimed", []byte(`{}`), false, 1); err != nil {
		t.Fatal(err)
	}
	srv.WaitFor(t, 20*time.Second, "want a summary with one claimed", func() bool {
		return strings.Contains(stderr.String(), "2 connected, 1 claimed")
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("gateway sim: %v", err)
	}
	done <- nil
	if n := srv.Bootstraps("GW-000003"); n != 0 {
		t.Errorf("GW-000003 bootstrapped %d times; --count 2 takes the first two serials only", n)
	}
	if regexp.MustCompile(`msgs/s`).FindString(stderr.String()) == "" || !regexp.MustCompile(`[1-9][0-9.]* msgs/s`).MatchString(stderr.String()) {
		t.Errorf("stderr %q; want a nonzero message rate", stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if !strings.HasPrefix(line, "GW-000001 ") && !strings.HasPrefix(line, "GW-000002 ") {
			t.Errorf("console line %q is not prefixed by one of the two serials", line)
		}
	}
	if !strings.Contains(stdout.String(), "GW-000001 claimed") {
		t.Errorf("stdout %q; want GW-000001 claimed", stdout.String())
	}
}
