package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/gwpki/gwpki/demo"
)

func newDemoCommand() *cobra.Command {
	o := demo.Options{}
	cmd := &cobra.Command{
		Use:   "demo [--dir DIR] [--keep]",
		Short: "Show the whole story in one command: CA, line, gateways online, a claim, telemetry, a revocation",
		Long: "Run gwpki's whole story on loopback, narrated and checked: create a CA and start the server in a temporary\n" +
			"directory, add a line station, provision five gateways with labels, run their agents (bootstrap, MQTT over\n" +
			"mutual TLS, telemetry), log in as an installer and claim one with the code it prints, watch its telemetry\n" +
			"arrive, revoke another and see the broker drop it and OCSP report it revoked, then stop and clean up.\n" +
			"Exits 0 only when every check passed; a failed run keeps its directory (demo.log has the server's log).\n" +
			"Nothing outside the directory is touched: not ./gwpki-data, not your gwpki login session. See docs/demo.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Out = cmd.OutOrStdout()
			if err := demo.Run(cmd.Context(), o); err != nil {
				cmd.SilenceUsage = true
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "", "keep everything in DIR (absent or empty) instead of a new temporary directory")
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "leave the directory in place at the end, to look around")
	cmd.Flags().IntVar(&o.Gateways, "gateways", 5, "how many gateways to provision (at least 3)")
	cmd.Flags().DurationVar(&o.Interval, "interval", 500*time.Millisecond, "the gateways' telemetry interval")
	return cmd
}
