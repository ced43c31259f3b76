package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gwpki/gwpki/ca"
)

func newCACommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Manage the issuing CA while the server is stopped",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newCARotateCommand())
	return cmd
}

type caRotateOptions struct {
	dir          string
	passwordFile string
	rootKey      string
	json         bool
}

// rotateOutput is what `gwpki ca rotate --json` prints.
type rotateOutput struct {
	Generation int       `json:"generation"`
	Subject    string    `json:"subject"`
	KeyID      string    `json:"key_id"`
	NotAfter   time.Time `json:"not_after"`
	KMSKey     string    `json:"kms_key,omitempty"`
	Retired    struct {
		Generation int       `json:"generation"`
		NotAfter   time.Time `json:"not_after"`
	} `json:"retired"`
}

func newCARotateCommand() *cobra.Command {
	o := &caRotateOptions{}
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the issuing CA's key and certificate; the old one is retired, not forgotten",
		Long: `Rotate creates a new issuing CA key (a file encrypted with the CA password,
or in the PKCS#11 module with --kms) and certificate, signed by the root
key, and makes it the one that issues. The old issuing CA is retired: its
certificate and key stay in the data directory, what it issued stays
trusted, and the server keeps answering OCSP and publishing CRLs for it
until it expires. Stop gwpki serve first; start it again afterwards, and
back up secrets/ (it holds the new key).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Holding the database lock proves the server is stopped for
			// as long as the rotation takes.
			st, err := openDBOffline(o.dir)
			if err != nil {
				return err
			}
			defer st.Close()
			opts := ca.RotateOptions{RootKey: o.rootKey}
			if o.passwordFile != "" {
				if opts.Password, err = ca.ReadPasswordFile(o.passwordFile); err != nil {
					return err
				}
			}
			res, err := ca.Rotate(cmd.Context(), o.dir, opts)
			if err != nil {
				return err
			}
			out := rotateOutput{
				Generation: res.Generation, Subject: res.Cert.Subject.CommonName, KeyID: ca.KeyID(res.Cert),
				NotAfter: res.Cert.NotAfter.UTC(), KMSKey: res.KMSKey,
			}
			out.Retired.Generation, out.Retired.NotAfter = res.Retired.Generation, res.Retired.NotAfter
			w := cmd.OutOrStdout()
			if o.json {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			l := ca.Layout{Dir: o.dir}
			fmt.Fprintf(w, "issuing CA g%d: %s (key ID %s), valid until %s\n", out.Generation, out.Subject, out.KeyID, out.NotAfter.Format(time.RFC3339))
			fmt.Fprintf(w, "  certificate: %s\n", l.IntermediateCert())
			if res.KMSKey != "" {
				fmt.Fprintf(w, "  key:         %s\n", res.KMSKey)
			} else {
				fmt.Fprintf(w, "  key:         %s\n", l.IntermediateKey())
			}
			fmt.Fprintf(w, "retired issuing CA g%d: trusted, answered for by OCSP and CRLs until %s\n", out.Retired.Generation, out.Retired.NotAfter.Format(time.RFC3339))
			fmt.Fprintf(w, "  certificate: %s\n", l.RetiredIntermediateCert(out.Retired.Generation))
			if res.Retired.KMSKey != "" {
				fmt.Fprintf(w, "  key:         %s\n", res.Retired.KMSKey)
			} else {
				fmt.Fprintf(w, "  key:         %s\n", l.RetiredIntermediateKey(out.Retired.Generation))
			}
			fmt.Fprintf(w, "next: start gwpki serve again, and back up %s now (it holds the new key)\n", "secrets/")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", defaultDataDir, "data directory")
	f.StringVar(&o.passwordFile, "password-file", "", "file with the CA key password, when init was given one")
	f.StringVar(&o.rootKey, "root-key", "", "the root CA's encrypted key, when it is kept offline (default: secrets/root_ca_key)")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
	return cmd
}
