package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/internal/store"
)

// The db commands read the database offline, like `bbolt check`: they fail
// with a clear error while gwpki serve holds the file.
func newDBCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Inspect the data directory's database while the server is stopped",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newDBCheckCommand(), newDBCertsCommand())
	return cmd
}

func openDBOffline(dir string) (*store.DB, error) {
	if _, err := ca.LoadConfig(dir); err != nil {
		return nil, withHint(err, "run gwpki init --dir "+dir)
	}
	st, err := store.Open(ca.Layout{Dir: dir}.Database(), store.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, withHint(err, "stop gwpki serve first; only one process may open the database")
	}
	return st, nil
}

func newDBCheckCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the consistency of the database file (pages, freelist)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openDBOffline(dir)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.Check(); err != nil {
				return fmt.Errorf("database %s is inconsistent: %w", st.Path(), err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %s is consistent\n", st.Path())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDataDir, "data directory")
	return cmd
}

type dbCertsOptions struct {
	dir         string
	gateway     string
	provisioner string
	serial      string
	json        bool
}

// certOutput is one certificate as `gwpki db certs` prints it.
type certOutput struct {
	Serial      string     `json:"serial"`
	Gateway     string     `json:"gateway,omitempty"`
	Provisioner string     `json:"provisioner,omitempty"`
	NotAfter    time.Time  `json:"not_after"`
	RenewedFrom string     `json:"renewed_from,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	Reason      string     `json:"reason,omitempty"`
}

func newDBCertsCommand() *cobra.Command {
	o := &dbCertsOptions{}
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "List stored certificates of a gateway, a station or one serial",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if countSet(o.gateway, o.provisioner, o.serial) != 1 {
				return withHint(errors.New("give exactly one of --gateway, --provisioner, --serial"), "gwpki db certs --provisioner line1")
			}
			st, err := openDBOffline(o.dir)
			if err != nil {
				return err
			}
			defer st.Close()
			certs, err := ca.NewDB(st)
			if err != nil {
				return err
			}
			var recs []ca.CertRecord
			switch {
			case o.gateway != "":
				recs, err = certs.CertificatesByGateway(o.gateway)
			case o.provisioner != "":
				recs, err = certs.CertificatesByProvisioner(o.provisioner)
			default:
				var rec *ca.CertRecord
				if rec, err = certs.Certificate(o.serial); err == nil {
					recs = []ca.CertRecord{*rec}
				}
			}
			if err != nil {
				return err
			}
			out := make([]certOutput, 0, len(recs))
			for _, r := range recs {
				c := certOutput{Serial: r.Serial, Gateway: r.Gateway, NotAfter: r.NotAfter, RenewedFrom: r.RenewedFrom}
				if r.Provisioner != nil {
					c.Provisioner = r.Provisioner.Name
				}
				if r.Revoked != nil {
					at := r.Revoked.RevokedAt
					c.RevokedAt, c.Reason = &at, r.Revoked.Reason
				}
				out = append(out, c)
			}
			if o.json {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERIAL\tGATEWAY\tSTATION\tNOT AFTER\tSTATE")
			for _, c := range out {
				state := "valid"
				if c.RevokedAt != nil {
					state = "revoked " + c.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Serial, c.Gateway, c.Provisioner, c.NotAfter.Format("2006-01-02"), state)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", defaultDataDir, "data directory")
	f.StringVar(&o.gateway, "gateway", "", "gateway serial")
	f.StringVar(&o.provisioner, "provisioner", "", "station (provisioner) name")
	f.StringVar(&o.serial, "serial", "", "certificate serial number (decimal)")
	f.BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

func countSet(vals ...string) int {
	n := 0
	for _, v := range vals {
		if v != "" {
			n++
		}
	}
	return n
}
