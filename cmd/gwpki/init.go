package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/internal/server"
)

type initOptions struct {
	dir          string
	hostnames    []string
	passwordFile string
	kms          string
	force        bool
}

func (o *initOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", defaultDataDir, "data directory to create")
	f.StringSliceVar(&o.hostnames, "hostname", nil, "DNS name or IP of the server (repeatable; default localhost, 127.0.0.1, ::1)")
	f.StringVar(&o.passwordFile, "password-file", "", "file with the password that encrypts the CA keys (default: generate one into the data directory)")
	f.StringVar(&o.kms, "kms", "", "PKCS#11 URI of the module that holds the issuing key, e.g. 'pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=gwpki?pin-source=/etc/gwpki/pin'")
	f.BoolVar(&o.force, "force", false, "move an existing data directory aside (nothing is deleted) and create a new one")
}

func newInitCommand() *cobra.Command {
	o := &initOptions{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a CA: root, issuing CA, configuration and the first admin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := server.InitOptions{Hostnames: o.hostnames, KMS: o.kms, Force: o.force}
			if o.passwordFile != "" {
				pw, err := ca.ReadPasswordFile(o.passwordFile)
				if err != nil {
					return err
				}
				opts.Password = pw
			}
			res, err := server.Init(cmd.Context(), o.dir, opts)
			if errors.Is(err, ca.ErrAlreadyInitialized) {
				return withHint(err, "nothing was changed; pass --force to move it aside and start over")
			}
			if err != nil {
				return err
			}
			server.PrintInit(cmd.OutOrStdout(), o.dir, res)
			return nil
		},
	}
	o.AddFlags(cmd)
	return cmd
}
