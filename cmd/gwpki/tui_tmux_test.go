package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/gateway"
)

// tmuxPane is a gwpki tui running in a detached tmux session on a private
// tmux server (its own socket), driven with send-keys and read with
// capture-pane.
type tmuxPane struct {
	t      *testing.T
	tmux   string
	env    []string
	socket string
	target string
	last   string // the screen as last captured
}

// startTmux starts command (a shell command line) in a detached 100x30
// session on a private tmux server that is killed at cleanup.
func startTmux(t *testing.T, tmux, command string) *tmuxPane {
	t.Helper()
	// The socket goes in a directory of its own (short: a socket path has
	// at most about 100 bytes), removed with the server at cleanup.
	sockDir, err := os.MkdirTemp("", "gwpki-tmux")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"TMUX_TMPDIR=" + sockDir}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TMUX=") && !strings.HasPrefix(kv, "TMUX_TMPDIR=") {
			env = append(env, kv) // not the tmux the tests may run in
		}
	}
	p := &tmuxPane{t: t, tmux: tmux, env: env, socket: "gwpki-test", target: "gwpki"}
	t.Cleanup(func() {
		p.cmd("kill-server").Run()
		os.RemoveAll(sockDir)
	})
	if out, err := p.cmd("new-session", "-d", "-s", p.target, "-x", "100", "-y", "30", command).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	return p
}

func (p *tmuxPane) cmd(args ...string) *exec.Cmd {
	// -f /dev/null: no user configuration changes keys or sizes.
	c := exec.Command(p.tmux, append([]string{"-L", p.socket, "-f", "/dev/null"}, args...)...)
	c.Env = p.env
	return c
}

// capture returns the visible screen as text.
func (p *tmuxPane) capture() string {
	p.t.Helper()
	out, err := p.cmd("capture-pane", "-p", "-t", p.target).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux capture-pane: %v\n%s\nlast screen:\n%s", err, out, p.last)
	}
	p.last = string(out)
	return p.last
}

// keys sends tmux key names (Enter, Tab, Down, C-o, …).
func (p *tmuxPane) keys(keys ...string) {
	p.t.Helper()
	if out, err := p.cmd(append([]string{"send-keys", "-t", p.target}, keys...)...).CombinedOutput(); err != nil {
		p.t.Fatalf("tmux send-keys %v: %v\n%s", keys, err, out)
	}
}

// typeText sends text literally, as typed.
func (p *tmuxPane) typeText(text string) {
	p.t.Helper()
	if out, err := p.cmd("send-keys", "-t", p.target, "-l", text).CombinedOutput(); err != nil {
		p.t.Fatalf("tmux send-keys -l %q: %v\n%s", text, err, out)
	}
}

// await polls the screen until it matches re (a regular expression over
// the whole screen, (?m) so ^ and $ are lines) and returns the screen; at
// the deadline it fails with the last screen.
func (p *tmuxPane) await(re string) string {
	p.t.Helper()
	pat := regexp.MustCompile("(?m)" + re)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s := p.capture(); pat.MatchString(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the screen does not match %q after 30s; last screen:\n%s", re, p.last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tmuxPath returns the tmux program, skipping the test when it is missing,
// except under CI (make test installs it), where that is a failure.
func tmuxPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("tmux")
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatal("tmux is not installed; make test installs it (scripts/install-test-deps.sh)")
	}
	t.Skip("tmux is not installed (apt install tmux, or make test); skipping the test that drives gwpki tui in tmux")
	return ""
}

// TestTUIInTmux drives the real gwpki tui in a terminal (tmux, 100x30)
// against a real gwpki serve: an installer logs in and claims a gateway with
// the display code its bundle gives, logs out; an operator of the same
// organisation sees it claimed in the fleet table, opens its detail page,
// revokes its certificates, and sees them revoked there and after going
// back to the table and opening it again.
func TestTUIInTmux(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the server and the TUI in tmux")
	}
	tmux := tmuxPath(t)
	bin := gwpkiBinary(t)
	dir := filepath.Join(t.TempDir(), "d")
	run(t, bin, "init", "--dir", dir, "--hostname", "127.0.0.1")
	stationFile := filepath.Join(t.TempDir(), "station.json")
	run(t, bin, "station", "add", "line1", "--dir", dir, "--out", stationFile)
	_, ready := startServe(t, bin, dir)
	root := ca.Layout{Dir: dir}.RootCert()
	out := filepath.Join(t.TempDir(), "out")
	run(t, bin, "provision", "--ca", ready.APIURL, "--root", root, "--station", stationFile,
		"--out", out, "--serial-prefix", "TX-", "--count", "2")
	const serial = "TX-000001"
	bundle, err := gateway.LoadBundle(filepath.Join(out, serial))
	if err != nil {
		t.Fatal(err)
	}

	adminPassword, err := os.ReadFile(ca.Layout{Dir: dir}.AdminPassword())
	if err != nil {
		t.Fatal(err)
	}
	admin := apiLogin(t, dir, ready.APIURL, "admin", strings.TrimSpace(string(adminPassword)))
	apiPostOK(t, dir, ready.APIURL+"/v1/users", admin, `{"username":"ina","org":"acme","role":"installer","password":"ina password"}`)
	apiPostOK(t, dir, ready.APIURL+"/v1/users", admin, `{"username":"olga","org":"acme","role":"operator","password":"olga password"}`)

	// The TUI's session file and anything else it writes stay in the test's
	// directories. After it exits the pane stays, saying how it exited.
	home := t.TempDir()
	config := filepath.Join(home, "config")
	command := fmt.Sprintf("env GWPKI_CONFIG_DIR=%s HOME=%s %s tui --server %s --root %s; echo \"gwpki tui exited: $?\"; sleep 3600",
		shellQuote(config), shellQuote(home), shellQuote(bin), shellQuote(ready.APIURL), shellQuote(root))
	p := startTmux(t, tmux, command)

	login := func(user, password string) {
		t.Helper()
		// --server and --root fill the first two fields: the cursor is on
		// the username.
		p.await(`Username`)
		p.await(`Password`)
		p.typeText(user)
		p.keys("Tab")
		p.typeText(password)
		p.keys("Enter")
		p.await(`User\s+` + user + `\b`)
		p.await(`Organisation\s+acme\b`)
	}

	// The installer claims gateway 1 with the code its console shows now.
	login("ina", "ina password")
	p.await(`Role\s+installer\b`)
	p.await(`> Claim a gateway`)
	p.keys("Enter")
	p.await(`^Claim a gateway\s*$[\s\S]*^Serial `) // the page, not the menu item
	p.typeText(serial)
	p.await(`^Serial\s+` + serial)
	p.keys("Tab")
	code := bundle.DisplayCode(time.Now())
	p.typeText(code)
	p.await(regexp.QuoteMeta(code))
	p.keys("Enter")
	p.await(`Claimed ` + serial + ` into organisation acme \(with its display code\)\.`)

	// Log out; the operator logs in.
	p.keys("Escape")
	p.await(`> Claim a gateway`)
	p.keys("C-o")
	p.await(`logged out`)
	login("olga", "olga password")
	p.await(`Role\s+operator\b`)

	// The fleet table: gateway 1, claimed into acme; gateway 2 is not
	// acme's.
	p.await(`  Fleet`)
	p.keys("Down")
	p.await(`> Fleet`)
	p.keys("Enter")
	p.await(`^Fleet  sorted by serial`)
	screen := p.await(`^> ` + serial + `\s.*\bclaimed\b[\s\S]*^1 shown, last page`)
	if !regexp.MustCompile(serial + `.*\bacme\b`).MatchString(screen) {
		t.Fatalf("the fleet table does not show %s in acme; screen:\n%s", serial, screen)
	}
	if strings.Contains(screen, "TX-000002") {
		t.Fatalf("the operator of acme sees TX-000002, which nobody claimed; screen:\n%s", screen)
	}

	// Its detail page: claimed, its birth certificate good.
	p.keys("Enter")
	p.await(serial + ` .*· acme · claimed ·`)
	p.await(`^\s+birth\s+\S+\s+until \S+\s+good\s*$`)

	// Revoke: the reason, then the serial typed to confirm.
	p.keys("R")
	p.await(`Revoke every certificate of ` + serial + `: why\?`)
	p.keys("Down")
	p.await(`> keyCompromise`)
	p.keys("Enter")
	p.await(`Type the serial ` + serial + ` and press enter to revoke`)
	p.typeText(serial)
	p.keys("Enter")
	p.await(`Revoked 1 certificate\(s\) of ` + serial + ` \(keyCompromise\); 0 already revoked\.`)
	p.await(`^\s+birth\s+\S+\s+until \S+\s+revoked \(keyCompromise\)\s*$`)

	// Back to the table: the gateway's state changes to revoked (on the
	// table's next load); into the detail again: loaded afresh, the birth
	// certificate is still revoked.
	p.keys("Escape")
	screen = p.await(`^> ` + serial + `\s.*\brevoked\b[\s\S]*^1 shown, last page`)
	if strings.Contains(screen, "Revoked 1 certificate") {
		t.Fatalf("the table still shows the detail page's status line; screen:\n%s", screen)
	}
	p.keys("Enter")
	screen = p.await(`^\s+birth\s+\S+\s+until \S+\s+revoked \(keyCompromise\)\s*$`)
	if strings.Contains(screen, "Revoked 1 certificate") {
		t.Fatalf("the reopened detail page shows the old status line instead of a fresh load; screen:\n%s", screen)
	}
	if regexp.MustCompile(`(?m)^\s+birth\s+.*\bgood\s*$`).MatchString(screen) {
		t.Fatalf("a birth certificate is still good after the revocation; screen:\n%s", screen)
	}

	// Quit cleanly.
	p.keys("C-c")
	p.await(`gwpki tui exited: 0`)
}
