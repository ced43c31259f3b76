package main

import (
	"errors"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/internal/server"
)

// defaultDataDir is where every command that takes --dir looks by default.
const defaultDataDir = "./gwpki-data"

type serveOptions struct {
	dir          string
	apiAddr      string
	httpAddr     string
	mqttAddr     string
	passwordFile string
	readyFile    string
}

func (o *serveOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", defaultDataDir, "data directory (initialised when new)")
	f.StringVar(&o.apiAddr, "api-addr", "", "HTTPS API listener (default from config.json, :8443)")
	f.StringVar(&o.httpAddr, "http-addr", "", "plain HTTP listener for OCSP, CRLs, health and metrics (default :8080)")
	f.StringVar(&o.mqttAddr, "mqtt-addr", "", "MQTT broker listener, TLS with gateway client certificates (default :8883)")
	f.StringVar(&o.passwordFile, "password-file", "", "file with the CA key password, when init was given one")
	f.StringVar(&o.readyFile, "ready-file", "", "write {\"api_url\",\"http_url\",\"mqtt_url\",\"pid\"} as JSON here once listening (for scripts)")
}

func newServeCommand() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the CA (step-ca API), the /v1 API, health and metrics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Issuance allocates a lot of short-lived garbage; trading memory
			// (plentiful on a CA host) for less GC CPU raises throughput.
			// GOGC in the environment still wins.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(400)
			}
			if path := os.Getenv("GWPKI_MEMPROFILE"); path != "" {
				// Every allocation since start, written at shutdown.
				defer writeHeapProfile(path)
			}
			if path := os.Getenv("GWPKI_CPUPROFILE"); path != "" {
				stop, err := startCPUProfile(path)
				if err != nil {
					return err
				}
				defer stop()
			}
			err := server.Run(cmd.Context(), server.Options{
				Dir:          o.dir,
				APIAddr:      o.apiAddr,
				HTTPAddr:     o.httpAddr,
				MQTTAddr:     o.mqttAddr,
				PasswordFile: o.passwordFile,
				ReadyFile:    o.readyFile,
				Out:          cmd.ErrOrStderr(),
				Logger:       slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)),
			})
			if errors.Is(err, ca.ErrNotInitialized) {
				return withHint(err, "run gwpki init --dir "+o.dir)
			}
			return err
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// startCPUProfile profiles the whole server run into path, for
// docs/benchmarks.md's profiling recipe; stop writes the profile out.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// writeHeapProfile writes the allocation profile to path, for
// `go tool pprof -sample_index=alloc_space`.
func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.Lookup("allocs").WriteTo(f, 0)
}
