package main

import (
	"context"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func TestParseFaultRule(t *testing.T) {
	cases := []struct {
		in    string
		ok    bool
		frac  float64
		delay time.Duration
	}{
		{"AddPortGroup:1", true, 1, 0},
		{"AddPortGroup:0.25:fail", true, 0.25, 0},
		{"CurrentTime:1:delay=300ms", true, 1, 300 * time.Millisecond},
		{"AddPortGroup", false, 0, 0},
		{":1", false, 0, 0},
		{"X:1.5", false, 0, 0},
		{"X:-0.1", false, 0, 0},
		{"X:abc", false, 0, 0},
		{"X:1:explode", false, 0, 0},
		{"X:1:delay=soon", false, 0, 0},
		{"X:1:delay=0s", false, 0, 0},
	}
	for _, c := range cases {
		r, err := ParseFaultRule(c.in)
		if (err == nil) != c.ok {
			t.Errorf("%q: err=%v, want ok=%v", c.in, err, c.ok)
			continue
		}
		if c.ok && (r.Fraction != c.frac || r.Delay != c.delay) {
			t.Errorf("%q: got %+v", c.in, r)
		}
	}
}

const envelope = `<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/><soapenv:Body><%s xmlns="urn:vim25"><_this type="X">x</_this></%s></soapenv:Body></soapenv:Envelope>`

func TestSOAPMethod(t *testing.T) {
	for _, m := range []string{"AddPortGroup", "RetrievePropertiesEx"} {
		body := []byte(strings.ReplaceAll(envelope, "%s", m))
		if got := SOAPMethod(body); got != m {
			t.Errorf("got %q want %q", got, m)
		}
	}
	if got := SOAPMethod([]byte("not xml")); got != "" {
		t.Errorf("garbage gave %q", got)
	}
}

func TestInjectorFailsAndDelays(t *testing.T) {
	reached := 0
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		_, _ = io.WriteString(w, "ok")
	})
	rules := []FaultRule{{Method: "AddPortGroup", Fraction: 1}, {Method: "CurrentTime", Fraction: 1, Delay: 50 * time.Millisecond}}
	srv := httptest.NewServer(NewInjector(next, 0, rules, rand.New(rand.NewSource(1))))
	defer srv.Close()
	post := func(m string) (*http.Response, string) {
		res, err := http.Post(srv.URL, "text/xml", strings.NewReader(strings.ReplaceAll(envelope, "%s", m)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		return res, string(b)
	}
	res, body := post("AddPortGroup")
	if res.StatusCode != 500 || !strings.Contains(body, `xsi:type="SystemError"`) || reached != 0 {
		t.Fatalf("fault not injected: %d %s reached=%d", res.StatusCode, body, reached)
	}
	start := time.Now()
	res, _ = post("CurrentTime")
	if res.StatusCode != 200 || time.Since(start) < 50*time.Millisecond || reached != 1 {
		t.Fatalf("delay not injected: %d %v reached=%d", res.StatusCode, time.Since(start), reached)
	}
}

func TestInjectorFractionIsSeeded(t *testing.T) {
	count := func(seed int64) int {
		in := NewInjector(nil, 0, nil, rand.New(rand.NewSource(seed)))
		n := 0
		for i := 0; i < 1000; i++ {
			if in.pick(0.3) {
				n++
			}
		}
		return n
	}
	a, b := count(42), count(42)
	if a != b || a < 200 || a > 400 {
		t.Fatalf("fraction 0.3 of 1000 gave %d and %d", a, b)
	}
}

func testNetwork(t *testing.T) (*mo.HostSystem, *types.HostNetworkInfo) {
	t.Helper()
	host := &mo.HostSystem{Config: clone(&esx.HostConfigInfo)}
	host.Self = types.ManagedObjectReference{Type: "HostSystem", Value: "host-test"}
	ensureUplinks(host)
	recompute(host.Config.Network)
	return host, host.Config.Network
}

func TestApplyNetworkConfigIsAllOrNothing(t *testing.T) {
	host, n := testNetwork(t)
	before := len(n.Vswitch)
	cfg := &types.HostNetworkConfig{
		Vswitch: []types.HostVirtualSwitchConfig{{ChangeOperation: "add", Name: "vSwitch9",
			Spec: &types.HostVirtualSwitchSpec{NumPorts: 16, Bridge: &types.HostVirtualSwitchBondBridge{NicDevice: []string{"vmnic2"}}}}},
		Portgroup: []types.HostPortGroupConfig{{ChangeOperation: "add",
			Spec: &types.HostPortGroupSpec{Name: "pg9", VswitchName: "missing"}}},
	}
	work := clone(n)
	if _, err := applyNetworkConfig(host, work, cfg, "modify"); err == nil {
		t.Fatal("a port group on a missing vSwitch was accepted")
	}
	if len(n.Vswitch) != before {
		t.Fatal("the original changed")
	}
	cfg.Portgroup[0].Spec.VswitchName = "vSwitch9"
	cfg.Vnic = []types.HostVirtualNicConfig{{ChangeOperation: "add", Portgroup: "pg9",
		Spec: &types.HostVirtualNicSpec{Ip: &types.HostIpConfig{IpAddress: "192.0.2.9", SubnetMask: "255.255.255.0"}}}}
	work = clone(n) // edit() discards a failed copy the same way
	res, err := applyNetworkConfig(host, work, cfg, "modify")
	if err != nil {
		t.Fatal(err.msg)
	}
	recompute(work)
	if len(res.VnicDevice) != 1 || res.VnicDevice[0] != "vmk1" {
		t.Fatalf("vnic devices %v", res.VnicDevice)
	}
	if vs := work.Vswitch[findVswitch(work, "vSwitch9")]; vs.Mtu != 1500 || len(vs.Portgroup) != 1 || vs.NumPortsAvailable != 15 {
		t.Fatalf("vswitch %+v", vs)
	}
	bad := []struct {
		name string
		spec types.HostVirtualSwitchSpec
	}{
		{"unknown nic", types.HostVirtualSwitchSpec{Bridge: &types.HostVirtualSwitchBondBridge{NicDevice: []string{"vmnic7"}}}},
		{"nic in use", types.HostVirtualSwitchSpec{Bridge: &types.HostVirtualSwitchBondBridge{NicDevice: []string{"vmnic0"}}}},
		{"mtu", types.HostVirtualSwitchSpec{Mtu: 20000}},
		{"teaming", types.HostVirtualSwitchSpec{Bridge: &types.HostVirtualSwitchBondBridge{NicDevice: []string{"vmnic3"}},
			Policy: &types.HostNetworkPolicy{NicTeaming: &types.HostNicTeamingPolicy{NicOrder: &types.HostNicOrderPolicy{ActiveNic: []string{"vmnic1"}}}}}},
	}
	for _, b := range bad {
		spec := b.spec
		if err := addVswitch(work, "vSwitchX", &spec); err == nil {
			t.Errorf("%s: accepted", b.name)
		}
	}
}

// extendedServer runs the extended simulator in process for one test (stopped when it
// ends) and returns a client of it.
func extendedServer(t *testing.T) (context.Context, *govmomi.Client) {
	model := simulator.VPX()
	model.Machine = 0
	t.Cleanup(model.Remove)
	if err := model.Create(); err != nil {
		t.Fatal(err)
	}
	Extend(model)
	srv := model.Service.NewServer()
	t.Cleanup(srv.Close)
	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, srv.URL, true)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, c
}

// TestHostsAddedLaterAreEquipped runs the simulator in process and checks that a
// host added to a cluster gets its own network system and option manager.
func TestHostsAddedLaterAreEquipped(t *testing.T) {
	ctx, c := extendedServer(t)
	cluster := simulator.Map.Any("ClusterComputeResource").(*simulator.ClusterComputeResource)
	task, err := object.NewClusterComputeResource(c.Client, cluster.Self).AddHost(ctx, types.HostConnectSpec{HostName: "late.example.test"}, true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	late := simulator.Map.Get(info.Result.(types.ManagedObjectReference)).(*simulator.HostSystem)
	var early *simulator.HostSystem // any host of the initial inventory (Any may pick late)
	for _, e := range simulator.Map.All("HostSystem") {
		if h := e.(*simulator.HostSystem); h.Self != late.Self {
			early = h
			break
		}
	}
	for _, h := range []*simulator.HostSystem{early, late} {
		if _, ok := simulator.Map.Get(*h.ConfigManager.NetworkSystem).(*NetworkSystem); !ok {
			t.Fatalf("%s has no extended network system", h.Name)
		}
		ns := object.NewHostNetworkSystem(c.Client, *h.ConfigManager.NetworkSystem)
		if err := ns.AddPortGroup(ctx, types.HostPortGroupSpec{Name: "same", VswitchName: "vSwitch0"}); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
	}
	if *early.ConfigManager.AdvancedOption == *late.ConfigManager.AdvancedOption {
		t.Fatal("hosts share an option manager")
	}
	for _, h := range []*simulator.HostSystem{early, late} {
		if findPortgroup(h.Config.Network, "same") < 0 {
			t.Fatalf("%s: port group missing from config.network", h.Name)
		}
	}
}
