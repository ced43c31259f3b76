package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/store"
)

// InitOptions are the choices of gwpki init.
type InitOptions = ca.InitOptions

// AdminUser is the name of the first administrator that Init creates.
const AdminUser = "admin"

// AdminOrg is the organisation of the first administrator.
const AdminOrg = "admin"

// InitResult tells what Init created.
type InitResult struct {
	*ca.InitResult
	AdminPassword string
}

// Init creates a data directory: the CA (see [ca.Init]), the database and
// the first admin, whose password goes to secrets/admin_password (0600).
func Init(ctx context.Context, dir string, opts InitOptions) (*InitResult, error) {
	res, err := ca.Init(ctx, dir, opts)
	if err != nil {
		return nil, err
	}
	l := ca.Layout{Dir: dir}
	st, err := store.Open(l.Database(), store.Options{})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if _, err := ca.NewDB(st); err != nil {
		return nil, err
	}
	// The summary Init returns reports the admin; no log line is needed.
	accounts, err := claim.NewAccounts(st, claim.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, err
	}
	if _, err := claim.LoadOrCreateClaimKey(l.ClaimKey()); err != nil {
		return nil, err
	}
	pw, err := claim.GeneratePassword()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(l.AdminPassword(), []byte(pw+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write admin password: %w", err)
	}
	if _, err := accounts.CreateUser(ctx, claim.NewUser{
		Username: AdminUser, Org: AdminOrg, Role: claim.RoleAdmin, Password: pw,
	}); err != nil {
		return nil, fmt.Errorf("create admin: %w", err)
	}
	return &InitResult{InitResult: res, AdminPassword: pw}, nil
}

// printInit tells what init created; the admin password is shown this once.
func printInit(w io.Writer, dir string, res *InitResult) {
	l := ca.Layout{Dir: dir}
	if res.MovedAside != "" {
		fmt.Fprintf(w, "moved the existing data directory to %s\n", res.MovedAside)
	}
	fmt.Fprintf(w, "created a CA in %s\n", dir)
	fmt.Fprintf(w, "  root certificate   %s\n", l.RootCert())
	fmt.Fprintf(w, "  root fingerprint   %s\n", res.RootSHA256)
	fmt.Fprintf(w, "  admin user         %s\n", AdminUser)
	fmt.Fprintf(w, "  admin password     %s (also in %s, mode 0600; shown once)\n", res.AdminPassword, l.AdminPassword())
}

// PrintInit writes the summary of a fresh data directory to w.
func PrintInit(w io.Writer, dir string, res *InitResult) { printInit(w, dir, res) }

func printBanner(w io.Writer, dir, apiURL, httpURL, mqttURL string) {
	l := ca.Layout{Dir: dir}
	fmt.Fprintf(w, "gwpki is serving the CA in %s\n", dir)
	fmt.Fprintf(w, "  API (step-ca and /v1)   %s   (TLS 1.2+, root %s)\n", apiURL, l.RootCert())
	fmt.Fprintf(w, "  OCSP and CRLs           %s/ocsp  %s/crl/<shard>.crl\n", httpURL, httpURL)
	fmt.Fprintf(w, "  health and metrics      %s/healthz  %s/metrics\n", httpURL, httpURL)
	fmt.Fprintf(w, "  MQTT broker (gateways)  %s   (TLS 1.2+, operational client certificates)\n", mqttURL)
	fmt.Fprintf(w, "next:\n")
	fmt.Fprintf(w, "  gwpki station add line1 --dir %s --out station.json --jwk line1.jwk\n", dir)
	fmt.Fprintf(w, "  step ca health --ca-url %s --root %s\n", apiURL, l.RootCert())
	fmt.Fprintf(w, "  gwpki login --server %s --root %s --user %s --password-file %s\n", apiURL, l.RootCert(), AdminUser, l.AdminPassword())
}
