package main

import (
	"testing"

	"github.com/vmware/govmomi/vim25/types"
)

func TestPortgroupWithoutOverrideReportsUnsetPolicies(t *testing.T) {
	_, n := testNetwork(t)
	if err := addPortgroup(n, &types.HostPortGroupSpec{Name: "plain", VswitchName: "vSwitch0"}); err != nil {
		t.Fatal(err.msg)
	}
	teaming := &types.HostNicTeamingPolicy{Policy: "failover_explicit", NicOrder: &types.HostNicOrderPolicy{ActiveNic: []string{"vmnic0"}}}
	if err := addPortgroup(n, &types.HostPortGroupSpec{Name: "override", VswitchName: "vSwitch0",
		Policy: types.HostNetworkPolicy{NicTeaming: teaming}}); err != nil {
		t.Fatal(err.msg)
	}
	recompute(n)
	plain := n.Portgroup[findPortgroup(n, "plain")]
	p := plain.Spec.Policy
	if p.Security == nil || p.NicTeaming == nil || p.NicTeaming.FailureCriteria == nil || p.OffloadPolicy == nil || p.ShapingPolicy == nil {
		t.Fatalf("a policy group is missing: %+v", p)
	}
	if *p.Security != (types.HostNetworkSecurityPolicy{}) || p.NicTeaming.Policy != "" || p.NicTeaming.NicOrder != nil ||
		p.NicTeaming.ReversePolicy != nil || *p.OffloadPolicy != (types.HostNetOffloadCapabilities{}) || p.ShapingPolicy.Enabled != nil {
		t.Fatalf("no-override members are set: %+v %+v", p.Security, p.NicTeaming)
	}
	vs := n.Vswitch[findVswitch(n, "vSwitch0")].Spec.Policy
	c := plain.ComputedPolicy
	if c.NicTeaming.Policy != vs.NicTeaming.Policy || *c.Security.AllowPromiscuous || !*c.OffloadPolicy.CsumOffload ||
		c.NicTeaming.FailureCriteria.CheckSpeed != "minimum" || *c.ShapingPolicy.Enabled {
		t.Fatalf("computed policy not inherited from the vSwitch: %+v", c.NicTeaming)
	}
	over := n.Portgroup[findPortgroup(n, "override")]
	if over.ComputedPolicy.NicTeaming.Policy != "failover_explicit" || over.Spec.Policy.Security == nil ||
		*over.ComputedPolicy.NicTeaming.NotifySwitches != *vs.NicTeaming.NotifySwitches {
		t.Fatalf("override not merged: %+v", over.ComputedPolicy.NicTeaming)
	}
	again := clone(n)
	recompute(again)
	if again.Portgroup[0].Spec.Policy.NicTeaming.FailureCriteria == nil {
		t.Fatal("recompute is not stable")
	}
}

func TestVswitchPolicyHasEveryValue(t *testing.T) {
	_, n := testNetwork(t)
	spec := &types.HostVirtualSwitchSpec{Bridge: &types.HostVirtualSwitchBondBridge{NicDevice: []string{"vmnic1", "vmnic2"}},
		Policy: &types.HostNetworkPolicy{NicTeaming: &types.HostNicTeamingPolicy{Policy: "failover_explicit",
			NicOrder: &types.HostNicOrderPolicy{ActiveNic: []string{"vmnic1"}, StandbyNic: []string{"vmnic2"}}}}}
	if err := addVswitch(n, "vSwitch1", spec); err != nil {
		t.Fatal(err.msg)
	}
	recompute(n)
	p := n.Vswitch[findVswitch(n, "vSwitch1")].Spec.Policy
	if p.Security == nil || p.Security.MacChanges == nil || p.OffloadPolicy == nil || p.ShapingPolicy == nil ||
		p.NicTeaming.NotifySwitches == nil || p.NicTeaming.FailureCriteria == nil {
		t.Fatalf("vSwitch policy left unset: %+v", p)
	}
	if p.NicTeaming.Policy != "failover_explicit" || len(p.NicTeaming.NicOrder.StandbyNic) != 1 {
		t.Fatalf("given teaming lost: %+v", p.NicTeaming)
	}
}
