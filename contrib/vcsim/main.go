// Command vcsim runs the govmomi vCenter simulator with per-host managers that
// keep what was written, so a read after a write shows the change.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

// faultList collects repeatable -fault flags.
type faultList []FaultRule

func (f *faultList) String() string { return fmt.Sprint(*f) }

func (f *faultList) Set(v string) error {
	r, err := ParseFaultRule(v)
	if err != nil {
		return err
	}
	*f = append(*f, r)
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	useTLS := flag.Bool("tls", false, "serve https instead of plain http")
	dc := flag.Int("dc", 1, "number of datacenters")
	cluster := flag.Int("cluster", 1, "clusters per datacenter")
	host := flag.Int("host", 3, "hosts per cluster")
	standalone := flag.Int("standalone", 1, "standalone hosts per datacenter")
	vms := flag.Int("vm", 0, "virtual machines per host and per cluster")
	delay := flag.Duration("delay", 0, "delay added to every SOAP call, e.g. 10ms")
	seed := flag.Int64("seed", 1, "seed of the random source that decides fault fractions")
	var faults faultList
	flag.Var(&faults, "fault", "Method:fraction[:fail|delay=DURATION], repeatable")
	flag.Parse()

	model := simulator.VPX()
	model.Datacenter = *dc
	model.Cluster = *cluster
	model.ClusterHost = *host
	model.Host = *standalone
	model.Machine = *vms
	if *cluster == 0 {
		model.ClusterHost = 0
	}
	defer model.Remove()
	if err := model.Create(); err != nil {
		log.Fatalf("vcsim: cannot create the inventory: %v", err)
	}
	Extend(model)

	if *useTLS {
		model.Service.TLS = new(tls.Config)
	}
	model.Service.Listen = &url.URL{Host: *listen}
	srv := model.Service.NewServer()
	defer srv.Close()
	srv.Config.Handler = NewInjector(NewMoveInto(srv.Config.Handler), *delay, faults,
		rand.New(rand.NewSource(*seed)))

	u := *srv.URL
	u.User = nil
	fmt.Printf("VCSIM_URL=%s\n", u.String())
	_ = os.Stdout.Sync()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
