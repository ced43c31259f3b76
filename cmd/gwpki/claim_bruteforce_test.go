package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/gateway"
)

// TestClaimBruteForce guesses one gateway's claim code 10,000 times through
// the real gwpki serve, spread over 20 installers and 160 source addresses,
// with 500 typos mixed in, under the default limits. No guess may claim it;
// only the five free failures and the one that starts the back-off may
// even be checked (more only if the run outlasts the one-minute back-off);
// every other guess is refused by the limits; typos are never counted. The
// right code from a fresh installer is refused too until an operator
// unlocks the gateway, and then claims it.
func TestClaimBruteForce(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 requests against a real server")
	}
	bin := gwpkiBinary(t)
	dir := filepath.Join(t.TempDir(), "d")
	run(t, bin, "init", "--dir", dir, "--hostname", "127.0.0.1")
	station := filepath.Join(t.TempDir(), "station.json")
	run(t, bin, "station", "add", "line1", "--dir", dir, "--out", station)
	_, ready := startServe(t, bin, dir)
	out := filepath.Join(t.TempDir(), "out")
	run(t, bin, "provision", "--ca", ready.APIURL, "--root", ca.Layout{Dir: dir}.RootCert(), "--station", station,
		"--out", out, "--serial-prefix", "GW-", "--count", "1")
	bundle, err := gateway.LoadBundle(filepath.Join(out, "GW-000001"))
	if err != nil {
		t.Fatal(err)
	}

	api := &bruteAPI{t: t, url: ready.APIURL, dir: dir}
	adminPassword, err := os.ReadFile(ca.Layout{Dir: dir}.AdminPassword())
	if err != nil {
		t.Fatal(err)
	}
	admin := api.login("127.0.0.1", "admin", strings.TrimSpace(string(adminPassword)))
	const users, sources, guesses, typos = 20, 40, 10000, 500 // sources per 127.0.x.0/24, 4 of them
	tokens := make([]string, users)
	for i := range tokens {
		name := fmt.Sprintf("guesser%02d", i)
		api.createUser(admin, name, "evil", "installer")
		tokens[i] = api.login("127.0.0.1", name, name+" password")
	}

	var counts sync.Map // "status reason scope" -> *atomic.Int64
	count := func(k string) {
		v, _ := counts.LoadOrStore(k, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 16 {
		wg.Go(func() {
			for i := range jobs {
				source := fmt.Sprintf("127.0.%d.%d", 1+w%4, 2+i%sources)
				code := bruteCode(i)
				if i%(guesses/typos) == 0 {
					code = typo(code)
				}
				status, r := api.claim(source, tokens[i%users], "GW-000001", code)
				count(fmt.Sprintf("%d %s %s", status, r.Reason, r.Scope))
			}
		})
	}
	for i := range guesses {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)

	got := map[string]int64{}
	counts.Range(func(k, v any) bool { got[k.(string)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("%d guesses in %v: %v", guesses, elapsed.Round(time.Millisecond), got)
	checked := got["403 wrong_code "]
	if got["400 typo "] != typos {
		t.Errorf("%d typos answered 400 typo; want %d", got["400 typo "], typos)
	}
	if got["429 limited gateway"]+checked+got["400 typo "] != guesses {
		t.Errorf("answers %v; want only wrong codes, typos and the gateway's back-off", got)
	}
	// 5 free failures and 1 that starts the back-off; each minute the run
	// lasts lets at most one more through.
	if max := 6 + int64(elapsed/time.Minute); checked < 6 || checked > max {
		t.Errorf("%d guesses were checked; want 6 to %d", checked, max)
	}

	// The rightful installer, with the right code, waits like everyone.
	ina := "ina"
	api.createUser(admin, ina, "acme", "installer")
	inaToken := api.login("127.0.0.200", ina, ina+" password")
	code := bundle.DisplayCode(time.Now())
	if status, r := api.claim("127.0.0.200", inaToken, "GW-000001", code); status != http.StatusTooManyRequests || r.Scope != claim.ScopeGateway {
		t.Fatalf("right code during the back-off = %d %+v; want 429 for the gateway", status, r)
	}
	// An operator lifts it, and learns how many guesses were checked.
	api.createUser(admin, "olga", "acme", "operator")
	olga := api.login("127.0.0.201", "olga", "olga password")
	var unlocked claim.UnlockResult
	api.post("127.0.0.201", olga, "/v1/devices/GW-000001/unlock", nil, &unlocked)
	if unlocked.Failures != int(checked) {
		t.Errorf("unlock cleared %d failures; want the %d checked guesses", unlocked.Failures, checked)
	}
	if status, r := api.claim("127.0.0.200", inaToken, "GW-000001", code); status != http.StatusOK {
		t.Fatalf("right code after the unlock = %d %+v; want 200", status, r)
	}
}

// bruteCode is the i-th guess: a display code with a valid check symbol.
func bruteCode(i int) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i)*2654435761)
	return claim.FormatDisplay(b[3:])
}

// typo changes the check symbol of code.
func typo(code string) string {
	last := code[len(code)-1]
	if last == '0' {
		return code[:len(code)-1] + "1"
	}
	return code[:len(code)-1] + "0"
}

// bruteAPI talks to the server's API from chosen loopback addresses.
type bruteAPI struct {
	t       *testing.T
	url     string
	dir     string
	mu      sync.Mutex
	clients map[string]*http.Client
}

func (a *bruteAPI) client(source string) *http.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.clients[source]; ok {
		return c
	}
	if a.clients == nil {
		a.clients = map[string]*http.Client{}
	}
	c := apiClient(a.t, a.dir)
	tr := c.Transport.(*http.Transport)
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}).DialContext
	a.t.Cleanup(tr.CloseIdleConnections)
	a.clients[source] = c
	return c
}

// do sends a JSON request and returns the status and the body.
func (a *bruteAPI) do(source, token, path string, in any) (int, []byte) {
	body, _ := json.Marshal(in)
	req, err := http.NewRequest(http.MethodPost, a.url+path, bytes.NewReader(body))
	if err != nil {
		a.t.Error(err)
		return 0, nil
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.client(source).Do(req)
	if err != nil {
		a.t.Errorf("POST %s: %v", path, err)
		return 0, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func (a *bruteAPI) post(source, token, path string, in, out any) {
	status, data := a.do(source, token, path, in)
	if status/100 != 2 || json.Unmarshal(data, out) != nil {
		a.t.Fatalf("POST %s = %d %s", path, status, data)
	}
}

func (a *bruteAPI) login(source, user, password string) string {
	var resp struct{ Token string }
	a.post(source, "", "/v1/login", map[string]string{"username": user, "password": password}, &resp)
	return resp.Token
}

func (a *bruteAPI) createUser(admin, name, org, role string) {
	var u map[string]any
	a.post("127.0.0.1", admin, "/v1/users", map[string]string{"username": name, "org": org, "role": role, "password": name + " password"}, &u)
}

func (a *bruteAPI) claim(source, token, serial, code string) (int, claim.ClaimRefusal) {
	status, data := a.do(source, token, "/v1/claims", claim.ClaimBody{Serial: serial, Code: code})
	var r claim.ClaimRefusal
	if status != http.StatusOK {
		if err := json.Unmarshal(data, &r); err != nil {
			a.t.Errorf("claim answer %d %s", status, data)
		}
	}
	return status, r
}
