package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/internal/apiclient"
)

type revokeOptions struct {
	reason string
	json   bool
}

func (o *revokeOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.reason, "reason", "", "RFC 5280 reason: keyCompromise, superseded, cessationOfOperation, ... or its code (default unspecified)")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
}

func newRevokeCommand() *cobra.Command {
	o := &revokeOptions{}
	cmd := &cobra.Command{
		Use:   "revoke SERIAL [--reason R] [--json]",
		Short: "Revoke a gateway (all its certificates) or one certificate (operator session)",
		Long: "Revoke every certificate of the gateway with serial SERIAL, or, when no gateway has that serial, the one\n" +
			"certificate with that serial number (decimal, 0x-hex or colon-separated hex). The OCSP responder answers\n" +
			"\"revoked\" from the next request on, and the certificate's CRL lists it within seconds.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return withHint(fmt.Errorf("revoke takes exactly one serial, got %d arguments", len(args)), "usage: "+cmd.UseLine())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func (o *revokeOptions) run(cmd *cobra.Command, serial string) error {
	if _, err := ca.ParseReason(o.reason); err != nil {
		return err
	}
	c, err := apiclient.Load()
	if err != nil {
		return apiclientError("revoke", err)
	}
	req := ca.RevokeRequest{Reason: o.reason}
	var resp ca.RevokeResponse
	err = c.Do(cmd.Context(), http.MethodPost, "/v1/devices/"+url.PathEscape(serial)+"/revoke", req, &resp)
	var apiErr *apiclient.Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		// No such gateway: maybe a certificate serial.
		if _, perr := ca.ParseCertSerial(serial); perr != nil {
			return withHint(fmt.Errorf("revoke: no gateway %s, and it is not a certificate serial number", serial),
				"gwpki db certs --gateway SERIAL (offline) lists a gateway's certificates")
		}
		err = c.Do(cmd.Context(), http.MethodPost, "/v1/certificates/"+url.PathEscape(serial)+"/revoke", req, &resp)
	}
	if err != nil {
		return apiclientError("revoke", err)
	}
	if o.json {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(resp)
	}
	what := "certificate " + serial
	if resp.Gateway != "" {
		what = "gateway " + resp.Gateway
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "revoked %d certificate(s) of %s", len(resp.Revoked), what)
	if resp.AlreadyRevoked > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "; %d were revoked before", resp.AlreadyRevoked)
	}
	fmt.Fprintln(cmd.ErrOrStderr())
	if len(resp.Revoked) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL (HEX)\tGATEWAY\tREVOKED AT\tREASON")
	for _, r := range resp.Revoked {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.SerialHex, r.Gateway, r.RevokedAt.UTC().Format("2006-01-02T15:04:05Z"), r.Reason)
	}
	return tw.Flush()
}
