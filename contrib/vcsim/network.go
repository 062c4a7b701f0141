package main

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

const (
	vswitchKeyPrefix   = "key-vim.host.VirtualSwitch-"
	portgroupKeyPrefix = "key-vim.host.PortGroup-"
	pnicKeyPrefix      = "key-vim.host.PhysicalNic-"
	vnicKeyPrefix      = "key-vim.host.VirtualNic-"
	defaultMtu         = 1500
	defaultNumPorts    = 128
)

// clone deep-copies a vim25 value the way the simulator does (XML round trip),
// so an edit can be tried on a copy and committed only when all of it succeeds.
func clone[T any](src *T) *T {
	b, err := xml.Marshal(src)
	if err != nil {
		panic(err)
	}
	dst := new(T)
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.TypeFunc = types.TypeFunc()
	if err := dec.Decode(dst); err != nil {
		panic(err)
	}
	return dst
}

// NetworkSystem replaces the stock HostNetworkSystem: its networkInfo IS the
// host's config.network, and every change is validated and applied per host.
type NetworkSystem struct {
	simulator.HostNetworkSystem
	host *mo.HostSystem
}

func newNetworkSystem(stock *simulator.HostNetworkSystem, host *mo.HostSystem) *NetworkSystem {
	stock.Host = host
	stock.NetworkInfo = host.Config.Network
	return &NetworkSystem{HostNetworkSystem: *stock, host: host}
}

// netErr carries a fault out of an edit on the copy.
type netErr struct {
	msg   string
	fault types.BaseMethodFault
}

func (e *netErr) soap() *soap.Fault { return simulator.Fault(e.msg, e.fault) }

func notFound(what string) *netErr {
	return &netErr{what + " not found", &types.NotFound{}}
}

func invalid(prop, msg string) *netErr {
	return &netErr{msg, &types.InvalidArgument{InvalidProperty: prop}}
}

// edit applies f to a copy of the host network and commits it on success.
func (s *NetworkSystem) edit(ctx *simulator.Context, f func(n *types.HostNetworkInfo) *netErr) *soap.Fault {
	var fault *soap.Fault
	var before, after []string
	ctx.WithLock(s.host, func() {
		cur := s.host.Config.Network
		n := clone(cur)
		if err := f(n); err != nil {
			fault = err.soap()
			return
		}
		recompute(n)
		before = portgroupNames(cur)
		after = portgroupNames(n)
		*cur = *n
		syncNicManager(s.host)
		if ref := s.host.ConfigManager.VirtualNicManager; ref != nil {
			if nm, ok := simulator.Map.Get(*ref).(*NicManager); ok {
				nm.refresh()
			}
		}
	})
	if fault == nil {
		syncNetworks(ctx, s.host, before, after)
		changed(s.host, "config.network", "config.virtualNicManagerInfo")
	}
	return fault
}

func portgroupNames(n *types.HostNetworkInfo) []string {
	var names []string
	for _, pg := range n.Portgroup {
		names = append(names, pg.Spec.Name)
	}
	return names
}

func findVswitch(n *types.HostNetworkInfo, name string) int {
	for i := range n.Vswitch {
		if n.Vswitch[i].Name == name {
			return i
		}
	}
	return -1
}

func findPortgroup(n *types.HostNetworkInfo, name string) int {
	for i := range n.Portgroup {
		if n.Portgroup[i].Spec.Name == name {
			return i
		}
	}
	return -1
}

func findVnic(n *types.HostNetworkInfo, device string) int {
	for i := range n.Vnic {
		if n.Vnic[i].Device == device {
			return i
		}
	}
	return -1
}

func bridgeNics(spec *types.HostVirtualSwitchSpec) []string {
	switch b := spec.Bridge.(type) {
	case *types.HostVirtualSwitchBondBridge:
		return b.NicDevice
	case *types.HostVirtualSwitchSimpleBridge:
		if b.NicDevice != "" {
			return []string{b.NicDevice}
		}
	}
	return nil
}

func teamingNics(p *types.HostNetworkPolicy) []string {
	if p == nil || p.NicTeaming == nil || p.NicTeaming.NicOrder == nil {
		return nil
	}
	return append(append([]string{}, p.NicTeaming.NicOrder.ActiveNic...), p.NicTeaming.NicOrder.StandbyNic...)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// checkVswitchSpec validates a vSwitch spec as ESXi does: known uplinks, not on
// another vSwitch, teaming NICs among the uplinks, a sane MTU and port count.
func checkVswitchSpec(n *types.HostNetworkInfo, name string, spec *types.HostVirtualSwitchSpec) *netErr {
	if spec.Mtu != 0 && (spec.Mtu < 1280 || spec.Mtu > 9000) {
		return invalid("mtu", fmt.Sprintf("vSwitch %s: mtu %d outside 1280..9000", name, spec.Mtu))
	}
	if spec.NumPorts < 0 || spec.NumPorts > 4088 {
		return invalid("numPorts", fmt.Sprintf("vSwitch %s: numPorts %d outside 0..4088", name, spec.NumPorts))
	}
	nics := bridgeNics(spec)
	for _, nic := range nics {
		found := false
		for _, p := range n.Pnic {
			if p.Device == nic {
				found = true
			}
		}
		if !found {
			return notFound(fmt.Sprintf("vSwitch %s: physical nic %s", name, nic))
		}
		for _, vs := range n.Vswitch {
			if vs.Name != name && contains(bridgeNics(&vs.Spec), nic) {
				return &netErr{fmt.Sprintf("vSwitch %s: physical nic %s is in use by %s", name, nic, vs.Name), &types.ResourceInUse{Name: nic}}
			}
		}
	}
	for _, nic := range teamingNics(spec.Policy) {
		if !contains(nics, nic) {
			return invalid("policy.nicTeaming.nicOrder", fmt.Sprintf("vSwitch %s: teaming nic %s is not an uplink", name, nic))
		}
	}
	return nil
}

func addVswitch(n *types.HostNetworkInfo, name string, spec *types.HostVirtualSwitchSpec) *netErr {
	if name == "" {
		return invalid("vswitchName", "vSwitch name is empty")
	}
	if findVswitch(n, name) >= 0 {
		return &netErr{"vSwitch " + name + " already exists", &types.AlreadyExists{Name: name}}
	}
	if spec == nil {
		spec = &types.HostVirtualSwitchSpec{}
	}
	if err := checkVswitchSpec(n, name, spec); err != nil {
		return err
	}
	if spec.NumPorts == 0 {
		spec.NumPorts = defaultNumPorts
	}
	if spec.Policy == nil {
		spec.Policy = defaultPolicy(bridgeNics(spec))
	}
	n.Vswitch = append(n.Vswitch, types.HostVirtualSwitch{Name: name, Spec: *spec})
	return nil
}

func updateVswitch(n *types.HostNetworkInfo, name string, spec *types.HostVirtualSwitchSpec) *netErr {
	i := findVswitch(n, name)
	if i < 0 {
		return notFound("vSwitch " + name)
	}
	if spec == nil {
		return invalid("spec", "vSwitch "+name+": spec is missing")
	}
	if err := checkVswitchSpec(n, name, spec); err != nil {
		return err
	}
	if spec.NumPorts == 0 {
		spec.NumPorts = n.Vswitch[i].Spec.NumPorts
	}
	if spec.Policy == nil {
		spec.Policy = n.Vswitch[i].Spec.Policy
	}
	n.Vswitch[i].Spec = *spec
	return nil
}

func removeVswitch(n *types.HostNetworkInfo, name string) *netErr {
	i := findVswitch(n, name)
	if i < 0 {
		return notFound("vSwitch " + name)
	}
	var keep []types.HostPortGroup
	for _, pg := range n.Portgroup {
		if pg.Spec.VswitchName != name {
			keep = append(keep, pg)
			continue
		}
		for _, v := range n.Vnic {
			if v.Portgroup == pg.Spec.Name {
				return &netErr{fmt.Sprintf("vSwitch %s: port group %s is used by %s", name, pg.Spec.Name, v.Device), &types.ResourceInUse{Name: name}}
			}
		}
	}
	n.Portgroup = keep
	n.Vswitch = append(n.Vswitch[:i], n.Vswitch[i+1:]...)
	return nil
}

func checkPortgroupSpec(n *types.HostNetworkInfo, spec *types.HostPortGroupSpec) *netErr {
	if spec.Name == "" {
		return invalid("name", "port group name is empty")
	}
	if spec.VlanId < 0 || spec.VlanId > 4095 {
		return invalid("vlanId", fmt.Sprintf("port group %s: vlanId %d outside 0..4095", spec.Name, spec.VlanId))
	}
	i := findVswitch(n, spec.VswitchName)
	if i < 0 {
		return notFound(fmt.Sprintf("port group %s: vSwitch %q", spec.Name, spec.VswitchName))
	}
	uplinks := bridgeNics(&n.Vswitch[i].Spec)
	for _, nic := range teamingNics(&spec.Policy) {
		if !contains(uplinks, nic) {
			return invalid("policy.nicTeaming.nicOrder", fmt.Sprintf("port group %s: teaming nic %s is not an uplink of %s", spec.Name, nic, spec.VswitchName))
		}
	}
	return nil
}

func addPortgroup(n *types.HostNetworkInfo, spec *types.HostPortGroupSpec) *netErr {
	if spec == nil {
		return invalid("spec", "port group spec is missing")
	}
	if err := checkPortgroupSpec(n, spec); err != nil {
		return err
	}
	if findPortgroup(n, spec.Name) >= 0 {
		return &netErr{"port group " + spec.Name + " already exists on this host", &types.AlreadyExists{Name: spec.Name}}
	}
	n.Portgroup = append(n.Portgroup, types.HostPortGroup{Spec: *spec})
	return nil
}

func updatePortgroup(n *types.HostNetworkInfo, name string, spec *types.HostPortGroupSpec) *netErr {
	i := findPortgroup(n, name)
	if i < 0 {
		return notFound("port group " + name)
	}
	if spec == nil {
		return invalid("spec", "port group "+name+": spec is missing")
	}
	if spec.Name == "" {
		spec.Name = name
	}
	if spec.VswitchName == "" {
		spec.VswitchName = n.Portgroup[i].Spec.VswitchName
	}
	if err := checkPortgroupSpec(n, spec); err != nil {
		return err
	}
	if spec.Name != name {
		if findPortgroup(n, spec.Name) >= 0 {
			return &netErr{"port group " + spec.Name + " already exists on this host", &types.AlreadyExists{Name: spec.Name}}
		}
		for j := range n.Vnic {
			if n.Vnic[j].Portgroup == name {
				n.Vnic[j].Portgroup = spec.Name
				n.Vnic[j].Spec.Portgroup = spec.Name
			}
		}
	}
	n.Portgroup[i].Spec = *spec
	return nil
}

func removePortgroup(n *types.HostNetworkInfo, name string) *netErr {
	i := findPortgroup(n, name)
	if i < 0 {
		return notFound("port group " + name)
	}
	for _, v := range n.Vnic {
		if v.Portgroup == name {
			return &netErr{fmt.Sprintf("port group %s is used by %s", name, v.Device), &types.ResourceInUse{Name: name}}
		}
	}
	n.Portgroup = append(n.Portgroup[:i], n.Portgroup[i+1:]...)
	return nil
}

func checkVnicSpec(n *types.HostNetworkInfo, device string, spec *types.HostVirtualNicSpec) *netErr {
	if spec.Mtu != 0 && (spec.Mtu < 1280 || spec.Mtu > 9000) {
		return invalid("mtu", fmt.Sprintf("%s: mtu %d outside 1280..9000", device, spec.Mtu))
	}
	if ip := spec.Ip; ip != nil && !ip.Dhcp && ip.IpAddress != "" && ip.SubnetMask == "" {
		return invalid("ip.subnetMask", fmt.Sprintf("%s: static ip %s without a subnet mask", device, ip.IpAddress))
	}
	return nil
}

func nextVnic(n *types.HostNetworkInfo) string {
	for i := 0; ; i++ {
		dev := fmt.Sprintf("vmk%d", i)
		if findVnic(n, dev) < 0 {
			return dev
		}
	}
}

func vnicMac(host *mo.HostSystem, device string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(host.Self.Value + "/" + device))
	v := h.Sum32()
	return fmt.Sprintf("00:50:56:%02x:%02x:%02x", byte(v>>16), byte(v>>8), byte(v))
}

func addVnic(host *mo.HostSystem, n *types.HostNetworkInfo, device, portgroup string, spec *types.HostVirtualNicSpec) (string, *netErr) {
	if spec == nil {
		spec = &types.HostVirtualNicSpec{}
	}
	if portgroup == "" {
		portgroup = spec.Portgroup
	}
	if findPortgroup(n, portgroup) < 0 {
		return "", notFound(fmt.Sprintf("port group %q for a new virtual nic", portgroup))
	}
	if device == "" {
		device = nextVnic(n)
	} else if findVnic(n, device) >= 0 {
		return "", &netErr{"virtual nic " + device + " already exists", &types.AlreadyExists{Name: device}}
	}
	if err := checkVnicSpec(n, device, spec); err != nil {
		return "", err
	}
	s := *spec
	s.Portgroup = portgroup
	if s.Mtu == 0 {
		s.Mtu = defaultMtu
	}
	if s.Mac == "" {
		s.Mac = vnicMac(host, device)
	}
	if s.NetStackInstanceKey == "" {
		s.NetStackInstanceKey = "defaultTcpipStack"
	}
	if s.Ip == nil {
		s.Ip = &types.HostIpConfig{Dhcp: true}
	}
	n.Vnic = append(n.Vnic, types.HostVirtualNic{Device: device, Portgroup: portgroup, Spec: s})
	return device, nil
}

// updateVnic merges the given fields into the nic, as ESXi does for UpdateVirtualNic.
func updateVnic(n *types.HostNetworkInfo, device, portgroup string, spec *types.HostVirtualNicSpec) *netErr {
	i := findVnic(n, device)
	if i < 0 {
		return notFound("virtual nic " + device)
	}
	if spec == nil {
		spec = &types.HostVirtualNicSpec{}
	}
	if err := checkVnicSpec(n, device, spec); err != nil {
		return err
	}
	v := &n.Vnic[i]
	if portgroup == "" {
		portgroup = spec.Portgroup
	}
	if portgroup != "" && portgroup != v.Portgroup {
		if findPortgroup(n, portgroup) < 0 {
			return notFound(fmt.Sprintf("port group %q for %s", portgroup, device))
		}
		v.Portgroup = portgroup
		v.Spec.Portgroup = portgroup
	}
	if spec.Ip != nil {
		ip := *spec.Ip
		if ip.Dhcp {
			ip.IpAddress, ip.SubnetMask = "", ""
		}
		v.Spec.Ip = &ip
	}
	if spec.Mtu != 0 {
		v.Spec.Mtu = spec.Mtu
	}
	if spec.Mac != "" {
		v.Spec.Mac = spec.Mac
	}
	if spec.TsoEnabled != nil {
		v.Spec.TsoEnabled = spec.TsoEnabled
	}
	if spec.IpRouteSpec != nil {
		v.Spec.IpRouteSpec = spec.IpRouteSpec
	}
	if spec.PinnedPnic != "" {
		v.Spec.PinnedPnic = spec.PinnedPnic
	}
	return nil
}

func removeVnic(n *types.HostNetworkInfo, device string) *netErr {
	i := findVnic(n, device)
	if i < 0 {
		return notFound("virtual nic " + device)
	}
	n.Vnic = append(n.Vnic[:i], n.Vnic[i+1:]...)
	return nil
}

// recompute fills the derived fields (keys, uplinks, counts, computed policy)
// from the specs, so every read shows values consistent with the last write.
func recompute(n *types.HostNetworkInfo) {
	for i := range n.Vswitch {
		vs := &n.Vswitch[i]
		vs.Spec.Policy = vswitchPolicy(vs.Spec.Policy, bridgeNics(&vs.Spec))
		vs.Key = vswitchKeyPrefix + vs.Name
		vs.NumPorts = vs.Spec.NumPorts
		vs.Mtu = vs.Spec.Mtu
		if vs.Mtu == 0 {
			vs.Mtu = defaultMtu
		}
		vs.Pnic = nil
		for _, nic := range bridgeNics(&vs.Spec) {
			vs.Pnic = append(vs.Pnic, pnicKeyPrefix+nic)
		}
		vs.Portgroup = nil
		used := int32(0)
		for _, pg := range n.Portgroup {
			if pg.Spec.VswitchName == vs.Name {
				vs.Portgroup = append(vs.Portgroup, portgroupKeyPrefix+pg.Spec.Name)
				for _, v := range n.Vnic {
					if v.Portgroup == pg.Spec.Name {
						used++
					}
				}
			}
		}
		vs.NumPortsAvailable = vs.NumPorts - used
	}
	for i := range n.Portgroup {
		pg := &n.Portgroup[i]
		noOverride(&pg.Spec.Policy)
		pg.Key = portgroupKeyPrefix + pg.Spec.Name
		pg.Vswitch = vswitchKeyPrefix + pg.Spec.VswitchName
		var vsPolicy *types.HostNetworkPolicy
		if j := findVswitch(n, pg.Spec.VswitchName); j >= 0 {
			vsPolicy = n.Vswitch[j].Spec.Policy
		}
		pg.ComputedPolicy = computedPolicy(vsPolicy, &pg.Spec.Policy)
		pg.Port = nil
		for _, v := range n.Vnic {
			if v.Portgroup == pg.Spec.Name {
				pg.Port = append(pg.Port, types.HostPortGroupPort{
					Key:  "key-vim.host.PortGroup.Port-" + v.Device,
					Mac:  []string{v.Spec.Mac},
					Type: "host",
				})
			}
		}
	}
	for i := range n.Vnic {
		v := &n.Vnic[i]
		v.Key = vnicKeyPrefix + v.Device
		v.Port = "key-vim.host.PortGroup.Port-" + v.Device
	}
}

// syncNetworks keeps the datacenter's Network objects in step with the host's
// port groups: one Network per name, shared by every host that has it.
func syncNetworks(ctx *simulator.Context, host *mo.HostSystem, before, after []string) {
	for _, name := range after {
		if !contains(before, name) {
			joinNetwork(ctx, host, name)
		}
	}
	for _, name := range before {
		if !contains(after, name) {
			leaveNetwork(ctx, host, name)
		}
	}
}

func datacenterOf(ref types.ManagedObjectReference) *simulator.Datacenter {
	for {
		obj := simulator.Map.Get(ref)
		if obj == nil {
			return nil
		}
		if dc, ok := obj.(*simulator.Datacenter); ok {
			return dc
		}
		e, ok := obj.(mo.Entity)
		if !ok || e.Entity().Parent == nil {
			return nil
		}
		ref = *e.Entity().Parent
	}
}

func joinNetwork(ctx *simulator.Context, host *mo.HostSystem, name string) {
	dc := datacenterOf(host.Self)
	if dc == nil {
		return
	}
	folder, ok := simulator.Map.Get(dc.NetworkFolder).(*simulator.Folder)
	if !ok {
		return
	}
	var network *mo.Network
	if e := simulator.Map.FindByName(name, folder.ChildEntity); e != nil {
		network, _ = e.(*mo.Network)
		if network == nil {
			return // a distributed port group of that name; leave it alone
		}
	} else {
		network = &mo.Network{}
		network.Name = name
		simulator.Map.NewEntity(network)
		ref := network.Self
		network.Summary = &types.NetworkSummary{Network: &ref, Name: name, Accessible: true}
		ctx.WithLock(folder, func() {
			folder.ChildEntity = append(folder.ChildEntity, ref)
		})
		simulator.Map.PutEntity(folder, network)
		simulator.Map.AddReference(dc, &dc.Network, ref)
	}
	simulator.Map.AddReference(network, &network.Host, host.Self)
	simulator.Map.AddReference(host, &host.Network, network.Self)
}

func leaveNetwork(ctx *simulator.Context, host *mo.HostSystem, name string) {
	dc := datacenterOf(host.Self)
	if dc == nil {
		return
	}
	folder, ok := simulator.Map.Get(dc.NetworkFolder).(*simulator.Folder)
	if !ok {
		return
	}
	e := simulator.Map.FindByName(name, folder.ChildEntity)
	network, _ := e.(*mo.Network)
	if network == nil {
		return
	}
	simulator.Map.RemoveReference(network, &network.Host, host.Self)
	simulator.Map.RemoveReference(host, &host.Network, network.Self)
	if len(network.Host) == 0 && len(network.Vm) == 0 && name != "VM Network" {
		simulator.Map.Remove(network.Self)
		simulator.Map.RemoveReference(folder, &folder.ChildEntity, network.Self)
		simulator.Map.RemoveReference(dc, &dc.Network, network.Self)
	}
}

func faultBody(f *soap.Fault) *soap.Fault { return f }

func (s *NetworkSystem) AddVirtualSwitch(ctx *simulator.Context, req *types.AddVirtualSwitch) soap.HasFault {
	body := &methods.AddVirtualSwitchBody{}
	if f := s.edit(ctx, func(n *types.HostNetworkInfo) *netErr { return addVswitch(n, req.VswitchName, req.Spec) }); f != nil {
		body.Fault_ = faultBody(f)
		return body
	}
	body.Res = &types.AddVirtualSwitchResponse{}
	return body
}

func (s *NetworkSystem) UpdateVirtualSwitch(ctx *simulator.Context, req *types.UpdateVirtualSwitch) soap.HasFault {
	body := &methods.UpdateVirtualSwitchBody{}
	if f := s.edit(ctx, func(n *types.HostNetworkInfo) *netErr { return updateVswitch(n, req.VswitchName, &req.Spec) }); f != nil {
		body.Fault_ = f
		return body
	}
	body.Res = &types.UpdateVirtualSwitchResponse{}
	return body
}

func (s *NetworkSystem) RemoveVirtualSwitch(ctx *simulator.Context, req *types.RemoveVirtualSwitch) soap.HasFault {
	body := &methods.RemoveVirtualSwitchBody{}
	if f := s.edit(ctx, func(n *types.HostNetworkInfo) *netErr { return removeVswitch(n, req.VswitchName) }); f != nil {
		body.Fault_ = f
		return body
	}
	body.Res = &types.RemoveVirtualSwitchResponse{}
	return body
}

func (s *NetworkSystem) AddPortGroup(ctx *simulator.Context, req *types.AddPortGroup) soap.HasFault {
	body := &methods.AddPortGroupBody{}
	if f := s.edit(ctx, func(n *types.HostNetworkInfo) *netErr { return addPortgroup(n, &req.Portgrp) }); f != nil {
		body.Fault_ = f
		return body
	}
	body.Res = &types.AddPortGroupResponse{}
	return body
}

func (s *NetworkSystem) UpdatePortGroup(ctx *simulator.Context, req *types.UpdatePortGroup) soap.HasFault {
	body := &methods.UpdatePortGroupBody{}
	if f := s.edit(ctx, func(n *types.HostNetworkInfo) *netErr { return updatePortgroup(n, req.PgName, &req.Portgrp) }); f != nil {
		body.Fault_ = f
		return body
	}
	body.Res = &types.UpdatePortGroupResponse{}
	return body
}

func (s *NetworkSystem) RemovePortGroup(ctx *simulator.Context, req *types.RemovePortGroup) soap.HasFault {
	body := &methods.RemovePortGroupBody{}
	if f := s.edit(ctx, func(n *types.HostNetworkInfo) *netErr { return removePortgroup(n, req.PgName) }); f != nil {
		body.Fault_ = f
		return body
	}
	body.Res = &types.RemovePortGroupResponse{}
	return body
}

func (s *NetworkSystem) AddVirtualNic(ctx *simulator.Context, req *types.AddVirtualNic) soap.HasFault {
	body := &methods.AddVirtualNicBody{}
	var device string
	f := s.edit(ctx, func(n *types.HostNetworkInfo) *netErr {
		var err *netErr
		device, err = addVnic(s.host, n, "", req.Portgroup, &req.Nic)
		return err
	})
	if f != nil {
		body.Fault_ = f
		return body
	}
	body.Res = &types.AddVirtualNicResponse{Returnval: device}
	return body
}

func (s *NetworkSystem) UpdateVirtualNic(ctx *simulator.Context, req *types.UpdateVirtualNic) soap.HasFault {
	body := &methods.UpdateVirtualNicBody{}
	if f := s.edit(ctx, func(n *types.HostNetworkInfo) *netErr { return updateVnic(n, req.Device, "", &req.Nic) }); f != nil {
		body.Fault_ = f
		return body
	}
	body.Res = &types.UpdateVirtualNicResponse{}
	return body
}

func (s *NetworkSystem) RemoveVirtualNic(ctx *simulator.Context, req *types.RemoveVirtualNic) soap.HasFault {
	body := &methods.RemoveVirtualNicBody{}
	if f := s.edit(ctx, func(n *types.HostNetworkInfo) *netErr { return removeVnic(n, req.Device) }); f != nil {
		body.Fault_ = f
		return body
	}
	body.Res = &types.RemoveVirtualNicResponse{}
	return body
}

func (s *NetworkSystem) UpdateDnsConfig(ctx *simulator.Context, req *types.UpdateDnsConfig) soap.HasFault {
	body := &methods.UpdateDnsConfigBody{}
	if f := s.edit(ctx, func(n *types.HostNetworkInfo) *netErr { return setDNS(n, req.Config) }); f != nil {
		body.Fault_ = f
		return body
	}
	body.Res = &types.UpdateDnsConfigResponse{}
	return body
}

func setDNS(n *types.HostNetworkInfo, cfg types.BaseHostDnsConfig) *netErr {
	if cfg == nil {
		return invalid("config", "dns config is missing")
	}
	d := cfg.GetHostDnsConfig()
	if d.Dhcp && d.VirtualNicDevice != "" && findVnic(n, d.VirtualNicDevice) < 0 {
		return notFound("dns virtualNicDevice " + d.VirtualNicDevice)
	}
	n.DnsConfig = cfg
	return nil
}

func (s *NetworkSystem) UpdateIpRouteConfig(ctx *simulator.Context, req *types.UpdateIpRouteConfig) soap.HasFault {
	body := &methods.UpdateIpRouteConfigBody{}
	if f := s.edit(ctx, func(n *types.HostNetworkInfo) *netErr { n.IpRouteConfig = req.Config; return nil }); f != nil {
		body.Fault_ = f
		return body
	}
	body.Res = &types.UpdateIpRouteConfigResponse{}
	return body
}

func (s *NetworkSystem) RefreshNetworkSystem(*types.RefreshNetworkSystem) soap.HasFault {
	return &methods.RefreshNetworkSystemBody{Res: &types.RefreshNetworkSystemResponse{}}
}

// UpdateNetworkConfig applies a batch atomically: adds and edits of vSwitches,
// then port groups, then virtual nics; then removals in the reverse order; then
// DNS and routing. Any failure leaves the host untouched.
func (s *NetworkSystem) UpdateNetworkConfig(ctx *simulator.Context, req *types.UpdateNetworkConfig) soap.HasFault {
	body := &methods.UpdateNetworkConfigBody{}
	var result types.HostNetworkConfigResult
	f := s.edit(ctx, func(n *types.HostNetworkInfo) *netErr {
		var err *netErr
		result, err = applyNetworkConfig(s.host, n, &req.Config, req.ChangeMode)
		return err
	})
	if f != nil {
		body.Fault_ = f
		return body
	}
	s.NetworkConfig = &req.Config
	body.Res = &types.UpdateNetworkConfigResponse{Returnval: result}
	return body
}

const (
	opAdd    = string(types.HostConfigChangeOperationAdd)
	opEdit   = string(types.HostConfigChangeOperationEdit)
	opRemove = string(types.HostConfigChangeOperationRemove)
)

func applyNetworkConfig(host *mo.HostSystem, n *types.HostNetworkInfo, c *types.HostNetworkConfig, mode string) (types.HostNetworkConfigResult, *netErr) {
	var res types.HostNetworkConfigResult
	switch mode {
	case "", string(types.HostConfigChangeModeModify), string(types.HostConfigChangeModeReplace):
	default:
		return res, invalid("changeMode", fmt.Sprintf("changeMode %q is neither modify nor replace", mode))
	}
	for _, op := range []string{opAdd, opEdit, opRemove, ""} {
		if err := checkOps(c, op); err != nil {
			return res, err
		}
	}
	// Adds and edits, outermost objects first.
	for i := range c.Vswitch {
		v := &c.Vswitch[i]
		switch opFor(v.ChangeOperation, findVswitch(n, v.Name) >= 0) {
		case opAdd:
			if err := addVswitch(n, v.Name, v.Spec); err != nil {
				return res, err
			}
		case opEdit:
			if err := updateVswitch(n, v.Name, v.Spec); err != nil {
				return res, err
			}
		}
	}
	for i := range c.Portgroup {
		p := &c.Portgroup[i]
		if p.Spec == nil {
			return res, invalid("portgroup.spec", "port group change without a spec")
		}
		switch opFor(p.ChangeOperation, findPortgroup(n, p.Spec.Name) >= 0) {
		case opAdd:
			if err := addPortgroup(n, p.Spec); err != nil {
				return res, err
			}
		case opEdit:
			if err := updatePortgroup(n, p.Spec.Name, p.Spec); err != nil {
				return res, err
			}
		}
	}
	for i := range c.Vnic {
		v := &c.Vnic[i]
		switch opFor(v.ChangeOperation, v.Device != "" && findVnic(n, v.Device) >= 0) {
		case opAdd:
			dev, err := addVnic(host, n, v.Device, v.Portgroup, v.Spec)
			if err != nil {
				return res, err
			}
			res.VnicDevice = append(res.VnicDevice, dev)
		case opEdit:
			if err := updateVnic(n, v.Device, v.Portgroup, v.Spec); err != nil {
				return res, err
			}
		}
	}
	// Removals, innermost objects first.
	for i := range c.Vnic {
		if c.Vnic[i].ChangeOperation == opRemove {
			if err := removeVnic(n, c.Vnic[i].Device); err != nil {
				return res, err
			}
		}
	}
	for i := range c.Portgroup {
		if c.Portgroup[i].ChangeOperation == opRemove {
			if err := removePortgroup(n, c.Portgroup[i].Spec.Name); err != nil {
				return res, err
			}
		}
	}
	for i := range c.Vswitch {
		if c.Vswitch[i].ChangeOperation == opRemove {
			if err := removeVswitch(n, c.Vswitch[i].Name); err != nil {
				return res, err
			}
		}
	}
	if mode == string(types.HostConfigChangeModeReplace) {
		if err := replaceRest(n, c); err != nil {
			return res, err
		}
	}
	if c.DnsConfig != nil {
		if err := setDNS(n, c.DnsConfig); err != nil {
			return res, err
		}
	}
	if c.IpRouteConfig != nil {
		n.IpRouteConfig = c.IpRouteConfig
	}
	return res, nil
}

// checkOps rejects a remove whose target is missing from the request.
func checkOps(c *types.HostNetworkConfig, op string) *netErr {
	if op != opRemove {
		return nil
	}
	for _, p := range c.Portgroup {
		if p.ChangeOperation == opRemove && p.Spec == nil {
			return invalid("portgroup.spec", "port group removal needs spec.name")
		}
	}
	for _, v := range c.Vnic {
		if v.ChangeOperation == opRemove && v.Device == "" {
			return invalid("vnic.device", "virtual nic removal needs a device")
		}
	}
	return nil
}

// opFor resolves an empty changeOperation to add or edit by existence.
func opFor(op string, exists bool) string {
	switch op {
	case opAdd, opEdit, opRemove:
		return op
	}
	if exists {
		return opEdit
	}
	return opAdd
}

// replaceRest removes, in replace mode, every vSwitch, port group and virtual
// nic of a kind the request lists but that the request does not name.
func replaceRest(n *types.HostNetworkInfo, c *types.HostNetworkConfig) *netErr {
	if len(c.Vnic) > 0 {
		keep := map[string]bool{}
		for _, v := range c.Vnic {
			keep[v.Device] = true
		}
		for _, v := range append([]types.HostVirtualNic{}, n.Vnic...) {
			if !keep[v.Device] {
				if err := removeVnic(n, v.Device); err != nil {
					return err
				}
			}
		}
	}
	if len(c.Portgroup) > 0 {
		keep := map[string]bool{}
		for _, p := range c.Portgroup {
			if p.Spec != nil {
				keep[p.Spec.Name] = true
			}
		}
		for _, p := range append([]types.HostPortGroup{}, n.Portgroup...) {
			if !keep[p.Spec.Name] {
				if err := removePortgroup(n, p.Spec.Name); err != nil {
					return err
				}
			}
		}
	}
	if len(c.Vswitch) > 0 {
		keep := map[string]bool{}
		for _, v := range c.Vswitch {
			keep[v.Name] = true
		}
		for _, v := range append([]types.HostVirtualSwitch{}, n.Vswitch...) {
			if !keep[v.Name] {
				if err := removeVswitch(n, v.Name); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// syncNicManager keeps config.virtualNicManagerInfo in step with the vnics:
// every vnic is a candidate for every nic type, selections of gone vnics drop.
func syncNicManager(host *mo.HostSystem) {
	info := host.Config.VirtualNicManagerInfo
	if info == nil {
		info = &types.HostVirtualNicManagerInfo{}
		host.Config.VirtualNicManagerInfo = info
	}
	for _, t := range nicTypes {
		found := false
		for _, nc := range info.NetConfig {
			if nc.NicType == t {
				found = true
			}
		}
		if !found {
			info.NetConfig = append(info.NetConfig, types.VirtualNicManagerNetConfig{NicType: t, MultiSelectAllowed: true})
		}
	}
	sort.Slice(info.NetConfig, func(i, j int) bool { return info.NetConfig[i].NicType < info.NetConfig[j].NicType })
	for i := range info.NetConfig {
		nc := &info.NetConfig[i]
		nc.CandidateVnic = nil
		for _, v := range host.Config.Network.Vnic {
			c := v
			c.Key = nc.NicType + "." + vnicKeyPrefix + v.Device
			nc.CandidateVnic = append(nc.CandidateVnic, c)
		}
		var sel []string
		for _, key := range nc.SelectedVnic {
			dev := key[strings.LastIndex(key, "-")+1:]
			if findVnic(host.Config.Network, dev) >= 0 {
				sel = append(sel, key)
			}
		}
		nc.SelectedVnic = sel
	}
}

var nicTypes = []string{
	"faultToleranceLogging", "management", "nvmeRdma", "nvmeTcp", "ptp", "vSphereBackupNFC",
	"vSphereProvisioning", "vSphereReplication", "vSphereReplicationNFC", "vmotion", "vsan", "vsanWitness",
}
