package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.step.sm/crypto/pemutil"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/provisioning"
)

func newStationCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "station",
		Short: "Manage production-line stations (one JWK provisioner each)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newStationAddCommand(), newStationListCommand(), newStationDisableCommand())
	return cmd
}

type stationAddOptions struct {
	dir   string
	out   string
	jwk   string
	caURL string
}

func newStationAddCommand() *cobra.Command {
	o := &stationAddOptions{}
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a station; its key is written to --out and exists nowhere else",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", defaultDataDir, "data directory")
	f.StringVar(&o.out, "out", "", "station file to write (required)")
	f.StringVar(&o.jwk, "jwk", "", "also write the station key as a plain JWK, for `step ca token --key`")
	f.StringVar(&o.caURL, "ca-url", "", "CA URL recorded in the station file (default https://<first hostname>:<api port>)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func (o *stationAddOptions) run(cmd *cobra.Command, name string) error {
	cfg, err := ca.LoadConfig(o.dir)
	if err != nil {
		return withHint(err, "run gwpki init --dir "+o.dir)
	}
	for _, p := range []string{o.out, o.jwk} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return withHint(fmt.Errorf("%s already exists", p), "choose another --out/--jwk path; a station key is never overwritten")
		}
	}
	root, err := pemutil.ReadCertificate(ca.Layout{Dir: o.dir}.RootCert())
	if err != nil {
		return fmt.Errorf("read root certificate: %w", err)
	}
	key, err := ca.AddStation(o.dir, name)
	if errors.Is(err, ca.ErrStationExists) {
		return withHint(err, "pick another name, or disable the old station with gwpki station disable "+name)
	}
	if err != nil {
		return err
	}
	caURL := o.caURL
	if caURL == "" {
		caURL = defaultCAURL(cfg)
	}
	sum := sha256.Sum256(root.Raw)
	sf := provisioning.Station{Name: name, CAURL: caURL, RootFingerprint: hex.EncodeToString(sum[:]), Key: key}
	if err := writeJSONFile(o.out, sf); err != nil {
		return err
	}
	if o.jwk != "" {
		if err := writeJSONFile(o.jwk, key); err != nil {
			return err
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "added station %s (key id %s)\n", name, key.KeyID)
	fmt.Fprintf(cmd.ErrOrStderr(), "station file %s (mode 0600: it holds the station key)\n", o.out)
	if o.jwk != "" {
		root := ca.Layout{Dir: o.dir}.RootCert()
		fmt.Fprintf(cmd.ErrOrStderr(), "try: step ca certificate GW-0001 gw.crt gw.key --ca-url %[1]s --root %[2]s \\\n"+
			"       --token \"$(step ca token GW-0001 --provisioner %[3]s --key %[4]s --san %[5]sGW-0001 --ca-url %[1]s --root %[2]s)\"\n",
			caURL, root, name, o.jwk, ca.GatewayURIPrefix)
	}
	return nil
}

// defaultCAURL is the API URL on the first hostname and the configured port.
func defaultCAURL(cfg *ca.Config) string {
	_, port, err := net.SplitHostPort(cfg.APIAddr)
	if err != nil || port == "" {
		port = "8443"
	}
	return "https://" + net.JoinHostPort(cfg.Hostnames[0], port)
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

type stationListOptions struct {
	dir  string
	json bool
}

func newStationListCommand() *cobra.Command {
	o := &stationListOptions{}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List stations",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stations, err := ca.Stations(o.dir)
			if err != nil {
				return withHint(err, "run gwpki init --dir "+o.dir)
			}
			if o.json {
				if stations == nil {
					stations = []ca.Station{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(stations)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tKEY ID\tCREATED")
			for _, s := range stations {
				state := "enabled"
				if s.Disabled {
					state = "disabled"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, state, s.Key.KeyID, s.CreatedAt.Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&o.dir, "dir", defaultDataDir, "data directory")
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

func newStationDisableCommand() *cobra.Command {
	var dir string
	var enable bool
	cmd := &cobra.Command{
		Use:   "disable NAME",
		Short: "Disable a station: its tokens are refused from then on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := ca.SetStationDisabled(dir, args[0], !enable)
			if errors.Is(err, ca.ErrStationNotFound) {
				return withHint(err, "gwpki station ls --dir "+dir+" lists the stations")
			}
			if err != nil {
				return err
			}
			state := "disabled"
			if enable {
				state = "enabled"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "station %s %s\n", args[0], state)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultDataDir, "data directory")
	cmd.Flags().BoolVar(&enable, "enable", false, "re-enable the station instead")
	return cmd
}
