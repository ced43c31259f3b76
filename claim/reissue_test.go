package claim

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestHTTPReissueRefusals: POST /v1/devices refuses a station's reissue of
// a claimed gateway (409, unclaim first) and of a decommissioned one (409,
// decommissioned gateways stay revoked), changes nothing then, and accepts
// the reissue once the organisation has unclaimed the gateway.
func TestHTTPReissueRefusals(t *testing.T) {
	env := newRegHTTPEnv(t)
	ctx := context.Background()
	attempts, err := NewAttempts(env.db, Limits{}, WithClock(env.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	revoked := &revokeLog{}
	claims, err := NewClaims(env.reg, attempts, env.audit, revoked.revoke, WithClock(env.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	first := decodeRegistration(t, env.post(t, "line1", registerBody("GW-1", "m1", env.ca.issue("GW-1", "line1", 1), false)))
	olga := User{Username: "olga", Org: "acme", Role: RoleOperator}
	if _, _, err := claims.Claim(ctx, ClaimRequest{Serial: "GW-1", Code: first.LabelCode, User: olga, Source: "192.0.2.1"}); err != nil {
		t.Fatalf("claim GW-1: %v", err)
	}

	// Claimed: refused, with the way out, and the device is unchanged.
	a := env.post(t, "line1", registerBody("GW-1", "m1", env.ca.issue("GW-1", "line1", 2), true))
	msg, hint := a.errorBody(t)
	if a.status != http.StatusConflict || !strings.Contains(msg, "is claimed") || !strings.Contains(hint, "gwpki unclaim GW-1") {
		t.Errorf("reissue of a claimed gateway = %d %q (hint %q); want 409, claimed, hinting at gwpki unclaim", a.status, msg, hint)
	}
	dev, err := env.reg.Device(ctx, "GW-1")
	if err != nil || dev.State != StateClaimed || dev.Org != "acme" || dev.Generation != 1 || dev.IDevIDSerial != first.Device.IDevIDSerial {
		t.Errorf("after the refused reissue: %+v, %v; want GW-1 still acme's, generation 1, first certificate", dev, err)
	}

	// Unclaimed by its organisation: the same reissue now works.
	if _, _, err := claims.Unclaim(ctx, "GW-1", olga, "192.0.2.1"); err != nil {
		t.Fatalf("unclaim GW-1: %v", err)
	}
	re := env.post(t, "line1", registerBody("GW-1", "m1", env.ca.issue("GW-1", "line1", 2), true))
	if re.status != http.StatusOK {
		t.Fatalf("reissue after the unclaim = %d %s; want 200", re.status, re.body)
	}
	if got := decodeRegistration(t, re); got.Device.Generation != 2 || got.Device.State != StateUnclaimed || got.LabelCode == first.LabelCode {
		t.Errorf("reissue after the unclaim answered %+v; want generation 2, unclaimed, a new label", got.Device)
	}

	// Decommissioned: its registered birth certificate revoked for good
	// (gwpki revoke): refused, and the device is unchanged.
	env.retire(idevid("GW-1", "line1", 2).Serial)
	a = env.post(t, "line1", registerBody("GW-1", "m1", env.ca.issue("GW-1", "line1", 3), true))
	if msg, _ := a.errorBody(t); a.status != http.StatusConflict || !strings.Contains(msg, "decommissioned gateways stay revoked") {
		t.Errorf("reissue of a decommissioned gateway = %d %q; want 409, decommissioned gateways stay revoked", a.status, msg)
	}
	if dev, _ := env.reg.Device(ctx, "GW-1"); dev.Generation != 2 {
		t.Errorf("after the refused reissue of a decommissioned gateway: generation %d; want 2", dev.Generation)
	}

	// The refusals are audited with their reasons.
	var reasons []string
	for _, e := range env.entries(t) {
		if e.Action == "register" && e.Result == "refused" {
			reasons = append(reasons, e.Detail["reason"])
		}
	}
	want := []string{"reissue of a claimed gateway", "reissue of a decommissioned gateway"}
	if strings.Join(reasons, "|") != strings.Join(want, "|") {
		t.Errorf("refused registrations audited with reasons %q; want %q", reasons, want)
	}
}

// TestReissueRacesClaim: a claim and a reissue of the same gateway at once.
// Whatever the order, the gateway never ends up claimed with a birth
// certificate the reissue put there: the registration checks the claim in
// the transaction that records the reissue.
func TestReissueRacesClaim(t *testing.T) {
	for round := range 20 {
		env := newRegEnv(t)
		ctx := context.Background()
		attempts, err := NewAttempts(env.db, Limits{}, WithClock(env.clock.Now))
		if err != nil {
			t.Fatal(err)
		}
		claims, err := NewClaims(env.reg, attempts, env.audit, (&revokeLog{}).revoke, WithClock(env.clock.Now))
		if err != nil {
			t.Fatal(err)
		}
		_, creds, _ := env.mustRegister(t, regReq("GW-1", "m1", "line1", 1))
		req := regReq("GW-1", "m1", "line1", 2)
		req.Reissue = true
		var wg sync.WaitGroup
		var claimErr, regErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _, claimErr = claims.Claim(ctx, ClaimRequest{Serial: "GW-1", Code: creds.LabelCode,
				User: User{Username: "olga", Org: "acme", Role: RoleOperator}, Source: "192.0.2.1"})
		}()
		go func() {
			defer wg.Done()
			_, _, _, regErr = env.reg.Register(ctx, req)
		}()
		wg.Wait()
		dev, err := env.reg.Device(ctx, "GW-1")
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case claimErr == nil && regErr == nil:
			t.Fatalf("round %d: both the claim and the reissue succeeded: %+v", round, dev)
		case claimErr == nil:
			if !errors.Is(regErr, ErrReissueClaimed) || dev.State != StateClaimed || dev.Generation != 1 {
				t.Fatalf("round %d: claim won; reissue %v, device %+v; want ErrReissueClaimed and generation 1 claimed", round, regErr, dev)
			}
		case regErr == nil:
			// The reissue won: the old label is retired, so the claim failed.
			if dev.State != StateUnclaimed || dev.Generation != 2 {
				t.Fatalf("round %d: reissue won; claim %v, device %+v; want unclaimed generation 2", round, claimErr, dev)
			}
		default:
			t.Fatalf("round %d: both failed: claim %v, reissue %v", round, claimErr, regErr)
		}
	}
}
