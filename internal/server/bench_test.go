package server

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gwpki/gwpki/provisioning"
)

// BenchmarkSign issues b.N birth certificates through the HTTPS API with 32
// concurrent keep-alive clients, CSRs and tokens prepared beforehand: the
// in-process counterpart of bench/issuance, for profiling.
func BenchmarkSign(b *testing.B) {
	ts := startServer(b, nil)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		serial := "BENCH-" + time.Now().Format("150405.000000000")
		_, csr, err := provisioning.NewGatewayKey(serial)
		if err != nil {
			b.Fatal(err)
		}
		tok, err := ts.station.Token(serial, provisioning.SignURL(ts.ready.APIURL), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = signBody(csr, tok, nil)
	}
	ts.client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	jobs := make(chan []byte)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range jobs {
				resp, err := ts.client.Post(ts.ready.APIURL+"/1.0/sign", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					continue
				}
				io.Copy(io.Discard, resp.Body) // drained, so the connection is reused
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	for _, body := range bodies {
		jobs <- body
	}
	close(jobs)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}
