package claim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/internal/store"
	"github.com/gwpki/gwpki/internal/store/storetest"
)

func newTestAttempts(tb testing.TB, db *store.DB, clock *fakeClock) *Attempts {
	tb.Helper()
	a, err := NewAttempts(db, Limits{}, WithClock(clock.Now), WithLogger(discardLogger()))
	if err != nil {
		tb.Fatalf("NewAttempts: %v", err)
	}
	return a
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// limitErr returns err as a *LimitError, failing the test if it is not one.
func limitErr(tb testing.TB, err error, what string) *LimitError {
	tb.Helper()
	var le *LimitError
	if !errors.As(err, &le) {
		tb.Fatalf("%s: got error %v; want a *LimitError", what, err)
	}
	return le
}

// reserveOK reserves an attempt and fails the test if it is refused.
func reserveOK(tb testing.TB, a *Attempts, gateway, user, source string) {
	tb.Helper()
	if err := a.Reserve(context.Background(), gateway, user, source); err != nil {
		tb.Fatalf("Reserve(%q, %q, %q) = %v; want nil", gateway, user, source, err)
	}
}

// reserveRefused reserves an attempt and returns the refusal, failing the
// test if there is none.
func reserveRefused(tb testing.TB, a *Attempts, gateway, user, source string) *LimitError {
	tb.Helper()
	err := a.Reserve(context.Background(), gateway, user, source)
	if err == nil {
		tb.Fatalf("Reserve(%q, %q, %q) = nil; want a *LimitError", gateway, user, source)
	}
	return limitErr(tb, err, fmt.Sprintf("Reserve(%q, %q, %q)", gateway, user, source))
}

func gatewayState(tb testing.TB, a *Attempts, gateway string) GatewayAttempts {
	tb.Helper()
	s, err := a.Gateway(context.Background(), gateway)
	if err != nil {
		tb.Fatalf("Gateway(%q): %v", gateway, err)
	}
	return s
}

// fresh returns a new user and source for every attempt, so that only the
// gateway's limit is in play.
type fresh struct{ n int }

func (f *fresh) next() (user, source string) {
	f.n++
	return fmt.Sprintf("user%d", f.n), fmt.Sprintf("192.0.2.%d", f.n%250+1) + fmt.Sprintf(":%d", f.n)
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{
		{0, 0}, {1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {11, 1024 * time.Minute},
		{12, 24 * time.Hour}, {40, 24 * time.Hour}, {41, 24 * time.Hour}, {1000, 24 * time.Hour},
	} {
		if got := backoff(tc.n, time.Minute, 24*time.Hour); got != tc.want {
			t.Errorf("backoff(%d, 24h) = %v; want %v", tc.n, got, tc.want)
		}
	}
}

// TestAttemptsGatewaySequence walks one gateway from its first failure to
// its lock: five free failures, back-offs of 1, 2, 4, ... minutes capped at
// 24h, the lock at the 20th failure, and Unlock.
func TestAttemptsGatewaySequence(t *testing.T) {
	clock := newFakeClock()
	a := newTestAttempts(t, storetest.OpenTemp(t), clock)
	var f fresh
	const gw = "GW-0001"

	for i := 1; i <= 5; i++ {
		u, s := f.next()
		reserveOK(t, a, gw, u, s)
	}
	if got, want := gatewayState(t, a, gw), (GatewayAttempts{Failures: 5, Total: 5, LastFailure: clock.Now()}); got != want {
		t.Fatalf("after 5 failures: Gateway = %+v; want %+v", got, want)
	}
	for failure := 6; failure < 20; failure++ {
		u, s := f.next()
		reserveOK(t, a, gw, u, s)
		want := min(time.Minute<<(failure-6), 24*time.Hour)
		u, s = f.next()
		le := reserveRefused(t, a, gw, u, s)
		if diff := cmp.Diff(&LimitError{Scope: ScopeGateway, RetryAfter: want}, le); diff != "" {
			t.Fatalf("after failure %d: refusal (-want +got):\n%s", failure, diff)
		}
		if got := gatewayState(t, a, gw); got.Total != failure || !got.NextAttempt.Equal(clock.Now().Add(want)) || got.Locked {
			t.Fatalf("after failure %d: Gateway = %+v; want total %d, next attempt %v, not locked", failure, got, failure, clock.Now().Add(want))
		}
		clock.Advance(want - time.Nanosecond)
		if le := reserveRefused(t, a, gw, u, s); le.RetryAfter != time.Nanosecond {
			t.Fatalf("after failure %d, 1ns before the back-off ends: RetryAfter = %v; want 1ns", failure, le.RetryAfter)
		}
		clock.Advance(time.Nanosecond)
	}
	u, s := f.next()
	reserveOK(t, a, gw, u, s) // the 20th
	clock.Advance(48 * time.Hour)
	le := reserveRefused(t, a, gw, u, s)
	if diff := cmp.Diff(&LimitError{Scope: ScopeGateway, Locked: true}, le); diff != "" {
		t.Fatalf("after 20 failures and 48h: refusal (-want +got):\n%s", diff)
	}
	if got := gatewayState(t, a, gw); !got.Locked || got.Total != 20 {
		t.Fatalf("after 20 failures: Gateway = %+v; want locked with total 20", got)
	}
	// Other gateways are not affected.
	reserveOK(t, a, "GW-0002", u, s)

	if err := a.Unlock(context.Background(), gw); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if got := gatewayState(t, a, gw); got != (GatewayAttempts{}) {
		t.Fatalf("after Unlock: Gateway = %+v; want zero", got)
	}
	for i := 1; i <= 5; i++ {
		u, s := f.next()
		reserveOK(t, a, gw, u, s)
	}
	if got := gatewayState(t, a, gw); got.Total != 5 || !got.NextAttempt.IsZero() {
		t.Fatalf("5 failures after Unlock: Gateway = %+v; want total 5 and no back-off", got)
	}
}

// TestAttemptsGatewayWindow checks that free failures are counted in a
// sliding window, that a back-off streak goes on while failures keep coming,
// and ends after a quiet window.
func TestAttemptsGatewayWindow(t *testing.T) {
	clock := newFakeClock()
	a := newTestAttempts(t, storetest.OpenTemp(t), clock)
	var f fresh
	const gw = "GW-0001"
	fail := func() {
		t.Helper()
		u, s := f.next()
		reserveOK(t, a, gw, u, s)
	}

	// 5 failures a minute apart; then 15 minutes after the first, that one
	// has left the window, so the next failure is still free.
	for range 5 {
		fail()
		clock.Advance(time.Minute)
	}
	clock.Advance(10 * time.Minute) // 15m after the first
	fail()
	if got := gatewayState(t, a, gw); got.Failures != 5 || !got.NextAttempt.IsZero() {
		t.Fatalf("6th failure 15m after the first: Gateway = %+v; want 5 failures in window and no back-off", got)
	}
	// Half a minute later the window (failures at 1, 2, 3, 4, 15 and 15.5
	// minutes) holds 6: back-off 1m.
	clock.Advance(30 * time.Second)
	fail()
	if got, want := gatewayState(t, a, gw).NextAttempt, clock.Now().Add(time.Minute); !got.Equal(want) {
		t.Fatalf("7th failure, 6 in window: next attempt %v; want %v", got, want)
	}
	// The streak goes on even though the window has thinned out: 14m after
	// the back-off ended is still within it.
	clock.Advance(15 * time.Minute)
	fail()
	if got, want := gatewayState(t, a, gw).NextAttempt, clock.Now().Add(2*time.Minute); !got.Equal(want) {
		t.Fatalf("8th failure, streak on: next attempt %v; want %v", got, want)
	}
	// A whole quiet window after the back-off ends: free again.
	clock.Advance(2*time.Minute + 15*time.Minute)
	fail()
	got := gatewayState(t, a, gw)
	if want := (GatewayAttempts{Failures: 1, Total: 9, LastFailure: clock.Now()}); got != want {
		t.Fatalf("9th failure after a quiet window: Gateway = %+v; want %+v", got, want)
	}
	for range 4 {
		fail()
	}
	if got := gatewayState(t, a, gw); !got.NextAttempt.IsZero() || got.Failures != 5 {
		t.Fatalf("5 failures in the new window: Gateway = %+v; want no back-off", got)
	}
	fail()
	if got, want := gatewayState(t, a, gw).NextAttempt, clock.Now().Add(time.Minute); !got.Equal(want) {
		t.Fatalf("6th failure in the new window: next attempt %v; want %v (a new streak starts at 1m)", got, want)
	}
}

func TestAttemptsRefund(t *testing.T) {
	clock := newFakeClock()
	a := newTestAttempts(t, storetest.OpenTemp(t), clock)
	ctx := context.Background()
	const gw, user, src = "GW-0001", "alice", "198.51.100.7:4000"

	// Six failures put the gateway in back-off and use 6 of alice's 10.
	for range 6 {
		reserveOK(t, a, gw, user, src)
	}
	reserveRefused(t, a, gw, user, src)
	clock.Advance(time.Minute)
	// The 7th attempt is right: its counts are taken back and the gateway's
	// failures forgotten.
	reserveOK(t, a, gw, user, src)
	if err := a.Refund(ctx, gw, user, src); err != nil {
		t.Fatalf("Refund: %v", err)
	}
	if got := gatewayState(t, a, gw); got != (GatewayAttempts{}) {
		t.Fatalf("after Refund: Gateway = %+v; want zero", got)
	}
	// alice has 6 counted: 4 more on other gateways, then refused.
	for i := range 4 {
		reserveOK(t, a, fmt.Sprintf("GW-1%03d", i), user, src)
	}
	le := reserveRefused(t, a, "GW-2000", user, src)
	if le.Scope != ScopeUser {
		t.Fatalf("alice's 11th counted attempt: scope %q; want %q", le.Scope, ScopeUser)
	}
	// Refunding with no gateway, user or source is no error.
	if err := a.Refund(ctx, "", "", ""); err != nil {
		t.Fatalf("Refund of nothing: %v", err)
	}
	if err := a.Refund(ctx, "GW-none", "bob", "203.0.113.1"); err != nil {
		t.Fatalf("Refund of unknown names: %v", err)
	}
}

func TestAttemptsUserLimit(t *testing.T) {
	clock := newFakeClock()
	a := newTestAttempts(t, storetest.OpenTemp(t), clock)
	start := clock.Now()
	// alice fails once a minute on different gateways from different
	// addresses.
	for i := range 10 {
		reserveOK(t, a, fmt.Sprintf("GW-%04d", i), "alice", fmt.Sprintf("192.0.2.%d", i+1))
		clock.Advance(time.Minute)
	}
	le := reserveRefused(t, a, "GW-0100", "alice", "192.0.2.200")
	if diff := cmp.Diff(&LimitError{Scope: ScopeUser, RetryAfter: 50 * time.Minute}, le); diff != "" {
		t.Fatalf("alice's 11th attempt, 10m after her first: refusal (-want +got):\n%s", diff)
	}
	// Refused attempts count against nothing.
	if got := gatewayState(t, a, "GW-0100"); got != (GatewayAttempts{}) {
		t.Fatalf("gateway of a refused attempt: Gateway = %+v; want zero", got)
	}
	// bob is not limited by alice's failures, on the same gateway and
	// address.
	reserveOK(t, a, "GW-0100", "bob", "192.0.2.200")
	// Once her first attempt is an hour old, one more is allowed.
	clock.Advance(start.Add(time.Hour).Sub(clock.Now()))
	reserveOK(t, a, "GW-0101", "alice", "192.0.2.201")
	le = reserveRefused(t, a, "GW-0102", "alice", "192.0.2.202")
	if diff := cmp.Diff(&LimitError{Scope: ScopeUser, RetryAfter: time.Minute}, le); diff != "" {
		t.Fatalf("alice an hour later, second attempt: refusal (-want +got):\n%s", diff)
	}
}

func TestAttemptsSourceLimit(t *testing.T) {
	clock := newFakeClock()
	a := newTestAttempts(t, storetest.OpenTemp(t), clock)
	// One IPv6 /64, however written, is one source.
	sources := []string{"[2001:db8:1:2::1]:443", "2001:db8:1:2::ffff", "[2001:db8:1:2:a:b:c:d%eth0]:1"}
	for i := range 30 {
		reserveOK(t, a, fmt.Sprintf("GW-%04d", i), fmt.Sprintf("user%d", i), sources[i%len(sources)])
	}
	le := reserveRefused(t, a, "GW-0100", "user100", "2001:db8:1:2::7")
	if diff := cmp.Diff(&LimitError{Scope: ScopeSource, RetryAfter: time.Hour}, le); diff != "" {
		t.Fatalf("31st attempt from one /64: refusal (-want +got):\n%s", diff)
	}
	// The next /64 and IPv4 addresses are other sources.
	reserveOK(t, a, "GW-0100", "user100", "2001:db8:1:3::7")
	reserveOK(t, a, "GW-0101", "user101", "192.0.2.1:80")
	// An empty source counts against no source.
	reserveOK(t, a, "GW-0102", "user102", "")
}

// TestAttemptsWorstRefusal checks which limit is reported when several
// refuse: a lock first, then the longest wait.
func TestAttemptsWorstRefusal(t *testing.T) {
	clock := newFakeClock()
	a := newTestAttempts(t, storetest.OpenTemp(t), clock)
	// alice reaches her limit; then GW-0001 goes into back-off (1m) through
	// other users.
	for i := range 10 {
		reserveOK(t, a, fmt.Sprintf("GW-1%03d", i), "alice", "192.0.2.1")
	}
	var f fresh
	for range 6 {
		u, s := f.next()
		reserveOK(t, a, "GW-0001", u, s)
	}
	le := reserveRefused(t, a, "GW-0001", "alice", "192.0.2.1")
	if diff := cmp.Diff(&LimitError{Scope: ScopeUser, RetryAfter: time.Hour}, le); diff != "" {
		t.Fatalf("user limit (1h) and gateway back-off (1m): refusal (-want +got):\n%s", diff)
	}
}

// TestAttemptsConcurrent reserves from 200 goroutines at one instant and
// checks that exactly as many attempts got through as the limit allows.
func TestAttemptsConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    func(i int) (gateway, user, source string)
		scope   string
		allowed int
	}{
		// 5 free failures and the 6th, which sets the back-off.
		{"gateway", func(i int) (string, string, string) {
			return "GW-0001", fmt.Sprintf("user%d", i), fmt.Sprintf("10.0.%d.%d", i/250, i%250)
		}, ScopeGateway, 6},
		{"user", func(i int) (string, string, string) {
			return fmt.Sprintf("GW-%04d", i), "alice", fmt.Sprintf("10.0.%d.%d", i/250, i%250)
		}, ScopeUser, 10},
		{"source", func(i int) (string, string, string) {
			return fmt.Sprintf("GW-%04d", i), fmt.Sprintf("user%d", i), "192.0.2.1"
		}, ScopeSource, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			a := newTestAttempts(t, storetest.OpenTemp(t), clock)
			var ok, refused atomic.Int64
			var wg sync.WaitGroup
			for i := range 200 {
				wg.Go(func() {
					g, u, s := tc.args(i)
					err := a.Reserve(context.Background(), g, u, s)
					var le *LimitError
					switch {
					case err == nil:
						ok.Add(1)
					case errors.As(err, &le) && le.Scope == tc.scope:
						refused.Add(1)
					default:
						t.Errorf("Reserve %d: %v; want nil or a %s limit", i, err, tc.scope)
					}
				})
			}
			wg.Wait()
			if ok.Load() != int64(tc.allowed) || refused.Load() != int64(200-tc.allowed) {
				t.Errorf("200 concurrent reservations: %d allowed, %d refused; want %d and %d",
					ok.Load(), refused.Load(), tc.allowed, 200-tc.allowed)
			}
		})
	}
	t.Run("lock", func(t *testing.T) {
		// More free failures than the lock allows, so that no back-off
		// comes first: exactly 20 get through, then the gateway is locked.
		clock := newFakeClock()
		a, err := NewAttempts(storetest.OpenTemp(t), Limits{GatewayFree: 25, UserMax: 1000, SourceMax: 1000},
			WithClock(clock.Now), WithLogger(discardLogger()))
		if err != nil {
			t.Fatalf("NewAttempts: %v", err)
		}
		var ok, locked atomic.Int64
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() {
				err := a.Reserve(context.Background(), "GW-0001", "alice", "192.0.2.1")
				var le *LimitError
				switch {
				case err == nil:
					ok.Add(1)
				case errors.As(err, &le) && le.Locked:
					locked.Add(1)
				default:
					t.Errorf("Reserve %d: %v; want nil or a lock", i, err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 20 || locked.Load() != 180 {
			t.Errorf("200 concurrent reservations against a lock at 20: %d allowed, %d locked; want 20 and 180", ok.Load(), locked.Load())
		}
		if got, want := gatewayState(t, a, "GW-0001"), (GatewayAttempts{Failures: 20, Total: 20, Locked: true, LastFailure: clock.Now()}); got != want {
			t.Errorf("Gateway = %+v; want %+v", got, want)
		}
	})
}

// TestAttemptsPersist closes and reopens the store between failures: the
// counts, the back-off and the lock survive.
func TestAttemptsPersist(t *testing.T) {
	clock := newFakeClock()
	db := storetest.OpenTemp(t)
	path := db.Path()
	a := newTestAttempts(t, db, clock)
	for range 6 {
		reserveOK(t, a, "GW-0001", "alice", "192.0.2.1")
	}
	for i := range 4 {
		reserveOK(t, a, fmt.Sprintf("GW-1%03d", i), "alice", "192.0.2.1")
	}
	if err := db.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}

	reopen := func() *Attempts {
		t.Helper()
		db, err := store.Open(path, store.Options{})
		if err != nil {
			t.Fatalf("reopen store: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return newTestAttempts(t, db, clock)
	}
	a = reopen()
	clock.Advance(30 * time.Second)
	le := reserveRefused(t, a, "GW-0001", "bob", "192.0.2.2")
	if diff := cmp.Diff(&LimitError{Scope: ScopeGateway, RetryAfter: 30 * time.Second}, le); diff != "" {
		t.Fatalf("gateway after reopening: refusal (-want +got):\n%s", diff)
	}
	le = reserveRefused(t, a, "GW-2000", "alice", "192.0.2.3")
	if diff := cmp.Diff(&LimitError{Scope: ScopeUser, RetryAfter: time.Hour - 30*time.Second}, le); diff != "" {
		t.Fatalf("user after reopening: refusal (-want +got):\n%s", diff)
	}
	if got := gatewayState(t, a, "GW-0001"); got.Total != 6 {
		t.Fatalf("gateway total after reopening = %d; want 6", got.Total)
	}
}

func TestAttemptsPrune(t *testing.T) {
	clock := newFakeClock()
	db := storetest.OpenTemp(t)
	a := newTestAttempts(t, db, clock)
	ctx := context.Background()
	reserveOK(t, a, "GW-0001", "alice", "192.0.2.1")
	clock.Advance(30 * time.Minute)
	reserveOK(t, a, "GW-0002", "bob", "192.0.2.2")
	count := func(bucket []byte) int {
		t.Helper()
		n := 0
		if err := db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucket).Stats().KeyN; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	clock.Advance(30 * time.Minute) // alice's window has passed, bob's not
	if err := a.Prune(ctx); err != nil {
		t.Fatalf("Prune: %v", err)
	}
	got := []int{count(bucketClaimUsers), count(bucketClaimSources), count(bucketClaimGateways)}
	// Gateways stay: their failures count towards the lock until a success
	// or an unlock.
	if diff := cmp.Diff([]int{1, 1, 2}, got); diff != "" {
		t.Errorf("keys in users, sources, gateways after Prune (-want +got):\n%s", diff)
	}
	// A write prunes its own key: bob's attempt is an hour old now.
	clock.Advance(30 * time.Minute)
	if err := a.Refund(ctx, "GW-0002", "bob", "192.0.2.2"); err != nil {
		t.Fatalf("Refund: %v", err)
	}
	got = []int{count(bucketClaimUsers), count(bucketClaimSources), count(bucketClaimGateways)}
	if diff := cmp.Diff([]int{0, 0, 1}, got); diff != "" {
		t.Errorf("keys in users, sources, gateways after a stale refund (-want +got):\n%s", diff)
	}
}

func TestAttemptsInvalid(t *testing.T) {
	clock := newFakeClock()
	a := newTestAttempts(t, storetest.OpenTemp(t), clock)
	long := strings.Repeat("x", maxAttemptKeyLen+1)
	for _, args := range [][3]string{{long, "u", "s"}, {"g", long, "s"}, {"g", "u", long}} {
		err := a.Reserve(context.Background(), args[0], args[1], args[2])
		var le *LimitError
		if err == nil || errors.As(err, &le) {
			t.Errorf("Reserve with a %d-byte name: %v; want an error that is no *LimitError", len(long), err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Reserve(ctx, "g", "u", "s"); !errors.Is(err, context.Canceled) {
		t.Errorf("Reserve with a cancelled context = %v; want context.Canceled", err)
	}
}

func TestLimitsDefaults(t *testing.T) {
	a := newTestAttempts(t, storetest.OpenTemp(t), newFakeClock())
	if diff := cmp.Diff(DefaultLimits, a.Limits()); diff != "" {
		t.Errorf("Limits() with zero Limits (-want +got):\n%s", diff)
	}
	custom := Limits{GatewayFree: 2, UserMax: 3}
	want := DefaultLimits
	want.GatewayFree, want.UserMax = 2, 3
	if diff := cmp.Diff(want, custom.withDefaults()); diff != "" {
		t.Errorf("withDefaults of %+v (-want +got):\n%s", custom, diff)
	}
}

func TestLimitErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		err  LimitError
		want string
	}{
		{LimitError{Scope: ScopeGateway, RetryAfter: time.Minute}, "too many failed claim attempts for this gateway: retry after 1m0s"},
		{LimitError{Scope: ScopeUser, RetryAfter: 59*time.Minute + 500*time.Millisecond}, "too many failed claim attempts by this user: retry after 59m1s"},
		{LimitError{Scope: ScopeSource, RetryAfter: time.Nanosecond}, "too many failed claim attempts from this address: retry after 1s"},
		{LimitError{Scope: ScopeGateway, Locked: true}, "claims of this gateway are locked after too many failed attempts: an operator must unlock it, or its claim button be pressed"},
		{LimitError{Scope: "other", RetryAfter: 2 * time.Second}, "too many failed claim attempts (other): retry after 2s"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q; want %q", tc.err, got, tc.want)
		}
	}
}
