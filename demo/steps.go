package demo

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.step.sm/crypto/pemutil"
	"golang.org/x/crypto/ocsp"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/gateway"
	"github.com/gwpki/gwpki/internal/apiclient"
	"github.com/gwpki/gwpki/internal/server"
	"github.com/gwpki/gwpki/provisioning"
	"github.com/gwpki/gwpki/telemetry"
)

// poll calls f every interval until it reports done or fails, or ctx ends
// (then the last error f gave, if any, says why).
func poll(ctx context.Context, interval time.Duration, what string, f func() (bool, error)) error {
	var last error
	for {
		done, err := f()
		if done || (err != nil && !errors.Is(err, errRetry)) {
			return err
		}
		last = err
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%s: %w (last: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// errRetry marks an error poll should retry.
var errRetry = errors.New("not yet")

func retryable(err error) error { return fmt.Errorf("%w: %v", errRetry, err) }

func (s *story) startServer(ctx context.Context) error {
	s.n.title("Create a CA and start the server")
	t0 := time.Now()
	res, err := server.Init(ctx, s.data, server.InitOptions{Hostnames: []string{"127.0.0.1", "localhost"}})
	if err != nil {
		return fmt.Errorf("gwpki init: %w", err)
	}
	s.adminPW = res.AdminPassword
	l := ca.Layout{Dir: s.data}
	s.n.ok("root and issuing CA created in %s (root sha256 %s…)", since(t0), res.RootSHA256[:16])
	if s.rootPEM, err = os.ReadFile(l.RootCert()); err != nil {
		return err
	}
	if s.root, err = pemutil.ParseCertificate(s.rootPEM); err != nil {
		return err
	}

	srvCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopSrv, s.serverErr = stop, make(chan error, 1)
	readyFile := filepath.Join(s.dir, "ready.json")
	go func() {
		s.serverErr <- server.Run(srvCtx, server.Options{
			Dir: s.data, APIAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
			ReadyFile: readyFile, Logger: s.log,
		})
	}()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = poll(wctx, 10*time.Millisecond, "waiting for the server", func() (bool, error) {
		select {
		case err := <-s.serverErr:
			s.serverErr <- err // cleanUp reads it again
			return false, fmt.Errorf("the server stopped: %v", err)
		default:
		}
		b, err := os.ReadFile(readyFile)
		if err != nil || json.Unmarshal(b, &s.ready) != nil {
			return false, errRetry
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	s.n.say("HTTPS API     %s   (step-ca's API and gwpki's /v1)", s.ready.APIURL)
	s.n.say("OCSP, CRLs    %s/ocsp, %s/crl/", s.ready.HTTPURL, s.ready.HTTPURL)
	s.n.say("MQTT broker   %s   (mutual TLS, operational certificates only)", s.ready.MQTTURL)
	s.n.ok("server listening %s after the start", since(t0))
	if s.admin, err = apiclient.Open(ctx, s.ready.APIURL, s.rootPEM, server.AdminUser, s.adminPW); err != nil {
		return fmt.Errorf("log in as %s: %w", server.AdminUser, err)
	}
	s.n.ok("the first admin logged in over HTTPS, trusting only this root")
	return nil
}

func (s *story) addStation(ctx context.Context) error {
	s.n.title("Add the production-line station %q", stationName)
	key, err := ca.AddStation(s.data, stationName)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(s.root.Raw)
	s.station = &provisioning.Station{Name: stationName, CAURL: s.ready.APIURL, RootFingerprint: hex.EncodeToString(sum[:]), Key: key}
	s.n.say("its key stays with the station; the CA keeps only the public half (key id %s…)", key.KeyID[:12])
	// The running server picks stations.json up by itself; step-ca's
	// public provisioner list shows when it has.
	t0 := time.Now()
	hc := s.httpsClient()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err = poll(wctx, 50*time.Millisecond, "waiting for the CA to list the station", func() (bool, error) {
		var list struct {
			Provisioners []struct{ Name string } `json:"provisioners"`
		}
		if err := getJSON(wctx, hc, s.ready.APIURL+"/provisioners", &list); err != nil {
			return false, retryable(err)
		}
		for _, p := range list.Provisioners {
			if p.Name == stationName {
				return true, nil
			}
		}
		return false, errRetry
	})
	if err != nil {
		return err
	}
	s.n.ok("the running CA lists provisioner %s (picked up in %s, no restart)", stationName, since(t0))
	return nil
}

func (s *story) provision(ctx context.Context) error {
	s.n.title("Provision %d gateways on the line, with labels", s.o.Gateways)
	for i := range s.o.Gateways {
		s.serials = append(s.serials, fmt.Sprintf("GW-%06d", i+1))
	}
	client, err := provisioning.NewClient(s.ready.APIURL, s.rootPEM, s.station, 8)
	if err != nil {
		return err
	}
	sum, err := provisioning.RunBatch(ctx, provisioning.BatchOptions{
		Client: client, Serials: s.serials, Model: model, Out: s.out, Labels: []string{"png"},
	})
	if err != nil {
		return fmt.Errorf("gwpki provision: %w", err)
	}
	if sum.Done != len(s.serials) {
		return fmt.Errorf("provisioned %d of %d gateways", sum.Done, len(s.serials))
	}
	for _, serial := range s.serials {
		dir := filepath.Join(s.out, serial)
		for _, f := range []string{"idevid.crt", "idevid.key", "root.pem", "label.png"} {
			if !fileExists(filepath.Join(dir, f)) {
				return fmt.Errorf("bundle of %s lacks %s", serial, f)
			}
		}
	}
	s.n.say("each bundle %s/<serial>/ holds idevid.key, idevid.crt (birth certificate), root.pem, label.png", s.rel(s.out))
	s.n.ok("%d birth certificates, registrations and labels in %s", sum.Done, sum.Elapsed.Round(time.Millisecond))
	var devices struct {
		Devices []claim.Device `json:"devices"`
	}
	if err := s.admin.Do(ctx, http.MethodGet, "/v1/devices?limit=100", nil, &devices); err != nil {
		return err
	}
	unclaimed := 0
	for _, d := range devices.Devices {
		if d.State == claim.StateUnclaimed && d.Model == model {
			unclaimed++
		}
	}
	if unclaimed != len(s.serials) {
		return fmt.Errorf("the registry lists %d unclaimed %s gateways, want %d", unclaimed, model, len(s.serials))
	}
	s.n.ok("the registry lists all %d, unclaimed", unclaimed)
	return nil
}

func (s *story) startAgents(ctx context.Context) error {
	s.n.title("Power the gateways on: each agent bootstraps and connects")
	agentCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopAgent = stop
	t0 := time.Now()
	for _, serial := range s.serials {
		b, err := gateway.LoadBundle(filepath.Join(s.out, serial))
		if err != nil {
			return err
		}
		cons := newConsole()
		a := gateway.NewAgent(b, gateway.AgentOptions{Interval: s.o.Interval, Console: cons, Logger: s.log})
		s.agents, s.consoles = append(s.agents, a), append(s.consoles, cons)
		s.agentsWG.Add(1)
		go func() {
			defer s.agentsWG.Done()
			if err := a.Run(agentCtx); err != nil {
				s.log.Error("agent stopped", "serial", serial, "err", err)
			}
		}()
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := poll(wctx, 20*time.Millisecond, "waiting for every gateway to connect", func() (bool, error) {
		for _, a := range s.agents {
			if st := a.Status(); !st.Connected {
				return false, retryable(fmt.Errorf("%s not connected yet", st.Serial))
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	st := s.agents[0].Status()
	s.n.say("POST /v1/bootstrap with the birth certificate (mutual TLS) → an operational certificate until %s",
		st.CertNotAfter.Local().Format("2006-01-02 15:04"))
	s.n.ok("%d gateways bootstrapped and connected to the broker in %s", len(s.agents), since(t0))
	return nil
}

var codeLine = regexp.MustCompile(`claim code: (\S+) \(valid until [^)]*\)`)

func (s *story) claim(ctx context.Context) error {
	serial, cons := s.serials[0], s.consoles[0]
	s.n.title("An installer claims %s with the code it prints", serial)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	m, err := cons.await(wctx, 0, codeLine)
	if err != nil {
		return err
	}
	code := m[1]
	s.n.say("%s's console: %q", serial, m[0])

	admin := s.admin
	for _, u := range []struct{ name, role string }{{installerName, "installer"}, {operatorName, "operator"}} {
		pw, err := claim.GeneratePassword()
		if err != nil {
			return err
		}
		body := map[string]string{"username": u.name, "org": org, "role": u.role, "password": pw}
		if err := admin.Do(ctx, http.MethodPost, "/v1/users", body, nil); err != nil {
			return fmt.Errorf("create %s: %w", u.name, err)
		}
		c, err := apiclient.Open(ctx, s.ready.APIURL, s.rootPEM, u.name, pw)
		if err != nil {
			return fmt.Errorf("log in as %s: %w", u.name, err)
		}
		if u.role == "installer" {
			s.installer = c
		} else {
			s.operator = c
		}
	}
	s.n.ok("the admin created installer %s and operator %s of %s; %s logged in", installerName, operatorName, org, installerName)

	// Another gateway's code is a wrong code: refused and counted.
	var refusal *apiclient.Error
	err = s.installer.Do(ctx, http.MethodPost, "/v1/claims", claim.ClaimBody{Serial: s.serials[2], Code: code}, nil)
	if !errors.As(err, &refusal) || refusal.Status != http.StatusForbidden {
		return fmt.Errorf("claiming %s with %s's code: got %v, want 403 wrong code", s.serials[2], serial, err)
	}
	s.n.ok("%s's code typed for %s is refused: %s", serial, s.serials[2], refusal.Message)

	mark := cons.mark()
	t0 := time.Now()
	var ans claim.ClaimAnswer
	if err := s.installer.Do(ctx, http.MethodPost, "/v1/claims", claim.ClaimBody{Serial: serial, Code: code}, &ans); err != nil {
		return fmt.Errorf("gwpki claim %s %s: %w", serial, code, err)
	}
	if ans.Device.Org != org || ans.Device.State != claim.StateClaimed || ans.Code != "display" {
		return fmt.Errorf("claim answered %+v, want claimed by %s with the display code", ans, org)
	}
	s.n.ok("POST /v1/claims {%q, %q} → claimed by %s with its display code", serial, code, ans.Device.Org)
	if _, err := cons.await(wctx, mark, regexp.MustCompile(`^\S+ claimed$`)); err != nil {
		return err
	}
	s.n.ok("%s heard gw/%s/cmd/claimed over MQTT %s after the claim and stopped showing its code", serial, serial, since(t0))
	return nil
}

func (s *story) telemetry(ctx context.Context) error {
	serial := s.serials[0]
	s.n.title("Operator %s watches %s's telemetry arrive", operatorName, serial)
	path := "/v1/devices/" + url.PathEscape(serial) + "/telemetry?limit=1000"
	var page telemetry.Page
	first := -1
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := poll(wctx, 250*time.Millisecond, "waiting for telemetry", func() (bool, error) {
		page = telemetry.Page{}
		if err := s.operator.Do(wctx, http.MethodGet, path, nil, &page); err != nil {
			return false, err
		}
		if first < 0 {
			first = len(page.Messages)
			s.n.say("GET %s: %d stored so far", path, first)
		}
		return len(page.Messages) >= first+4, nil
	})
	if err != nil {
		return err
	}
	msgs := page.Messages
	for _, m := range msgs[max(0, len(msgs)-3):] {
		s.n.say("%s  %s  %s", m.Time.Local().Format("15:04:05.000"), m.Topic, clip(string(m.Payload), 72))
	}
	s.n.ok("%d messages stored, %d of them since the operator first looked; every one was durable before its PUBACK",
		len(msgs), len(msgs)-first)
	err = s.operator.Do(ctx, http.MethodGet, "/v1/devices/"+url.PathEscape(s.serials[1])+"/telemetry", nil, nil)
	var refusal *apiclient.Error
	if !errors.As(err, &refusal) || refusal.Status != http.StatusNotFound {
		return fmt.Errorf("operator of %s reading unclaimed %s's telemetry: got %v, want 404", org, s.serials[1], err)
	}
	s.n.ok("%s cannot read %s's telemetry: it is not %s's gateway (404)", operatorName, s.serials[1], org)
	return nil
}

func (s *story) revoke(ctx context.Context) error {
	serial, cons, agent := s.serials[1], s.consoles[1], s.agents[1]
	bundle := filepath.Join(s.out, serial)
	s.n.title("%s is reported stolen: the admin revokes it", serial)
	cert, issuer, err := operationalCert(bundle)
	if err != nil {
		return err
	}
	ocspURL := s.ready.HTTPURL + "/ocsp"
	before, err := ocspStatus(ctx, ocspURL, cert.Leaf, issuer)
	if err != nil {
		return err
	}
	if before.Status != ocsp.Good {
		return fmt.Errorf("OCSP says %s for %s's operational certificate before the revocation, want good", ocspStatusName(before.Status), serial)
	}
	s.n.ok("before: OCSP says good for its operational certificate (serial %X)", cert.Leaf.SerialNumber)

	mark := cons.mark()
	t0 := time.Now()
	var ans ca.RevokeResponse
	body := map[string]string{"reason": "keyCompromise"}
	if err := s.admin.Do(ctx, http.MethodPost, "/v1/devices/"+serial+"/revoke", body, &ans); err != nil {
		return fmt.Errorf("gwpki revoke %s: %w", serial, err)
	}
	answered := time.Since(t0)
	s.n.ok("POST /v1/devices/%s/revoke → %d certificates revoked (birth and operational), reason keyCompromise, in %s",
		serial, len(ans.Revoked), answered.Round(100*time.Microsecond))
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := cons.await(wctx, mark, regexp.MustCompile(`connection lost.*`))
	if err != nil {
		return fmt.Errorf("the broker did not drop %s: %w", serial, err)
	}
	s.n.ok("the broker dropped %s's session %s after the revoke was sent; its console: %q", serial, since(t0), m[0])

	err = mqttConnect(s.ready.MQTTURL, filepath.Join(bundle, "root.pem"), serial, cert)
	if err == nil {
		return fmt.Errorf("the broker accepted a new session with %s's revoked certificate", serial)
	}
	s.n.ok("a new MQTT connection with its operational certificate is refused (%v)", err)
	if m, err = cons.await(wctx, mark, regexp.MustCompile(`bootstrap.*(refused|403|revoked).*`)); err != nil {
		return fmt.Errorf("%s's agent did not report its bootstrap refused: %w", serial, err)
	}
	if agent.Status().Connected {
		return fmt.Errorf("%s's agent is connected again", serial)
	}
	s.n.ok("its agent tries to bootstrap again with the birth certificate and is refused: %q", m[0])

	after, err := ocspStatus(ctx, ocspURL, cert.Leaf, issuer)
	if err != nil {
		return err
	}
	if after.Status != ocsp.Revoked || after.RevocationReason != ocsp.KeyCompromise {
		return fmt.Errorf("OCSP says %s (reason %d) after the revocation, want revoked, keyCompromise", ocspStatusName(after.Status), after.RevocationReason)
	}
	s.n.ok("after: OCSP says revoked, reason keyCompromise, at %s", after.RevokedAt.Local().Format("15:04:05"))

	claimed, claimedIssuer, err := operationalCert(filepath.Join(s.out, s.serials[0]))
	if err != nil {
		return err
	}
	st, err := ocspStatus(ctx, ocspURL, claimed.Leaf, claimedIssuer)
	if err != nil {
		return err
	}
	a0 := s.agents[0].Status()
	if st.Status != ocsp.Good || !a0.Connected {
		return fmt.Errorf("%s: OCSP %s, connected %v; want good and connected", s.serials[0], ocspStatusName(st.Status), a0.Connected)
	}
	s.n.ok("%s is untouched: OCSP good, still connected, %d messages acknowledged", s.serials[0], a0.Acked)
	return nil
}

// httpsClient trusts only the demo's root.
func (s *story) httpsClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(s.root)
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
}

func getJSON(ctx context.Context, hc *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

// clip shortens s to n runes for the narration.
func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// rel shortens a path under the story's directory for the narration.
func (s *story) rel(path string) string {
	if r, err := filepath.Rel(s.dir, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}
