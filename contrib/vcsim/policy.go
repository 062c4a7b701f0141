package main

import "github.com/vmware/govmomi/vim25/types"

// Network policies as ESXi reports them. A vSwitch has a value for every policy
// setting; a port group reports every policy group present and leaves unset
// what it does not override ("no override"), and its computedPolicy is the
// vSwitch policy with the port group's overrides on top.

// defaultPolicy is the policy ESXi gives a new vSwitch (as captured from ESXi
// 6.5 in govmomi's esx.HostConfigInfo): all of nics active.
func defaultPolicy(nics []string) *types.HostNetworkPolicy {
	return &types.HostNetworkPolicy{
		Security: &types.HostNetworkSecurityPolicy{
			AllowPromiscuous: types.NewBool(false),
			MacChanges:       types.NewBool(true),
			ForgedTransmits:  types.NewBool(true),
		},
		NicTeaming: &types.HostNicTeamingPolicy{
			Policy:         "loadbalance_srcid",
			ReversePolicy:  types.NewBool(true),
			NotifySwitches: types.NewBool(true),
			RollingOrder:   types.NewBool(false),
			FailureCriteria: &types.HostNicFailureCriteria{
				CheckSpeed:        "minimum",
				Speed:             10,
				CheckDuplex:       types.NewBool(false),
				FullDuplex:        types.NewBool(false),
				CheckErrorPercent: types.NewBool(false),
				Percentage:        0,
				CheckBeacon:       types.NewBool(false),
			},
			NicOrder: &types.HostNicOrderPolicy{ActiveNic: nics},
		},
		OffloadPolicy: &types.HostNetOffloadCapabilities{
			CsumOffload:     types.NewBool(true),
			TcpSegmentation: types.NewBool(true),
			ZeroCopyXmit:    types.NewBool(true),
		},
		ShapingPolicy: &types.HostNetworkTrafficShapingPolicy{Enabled: types.NewBool(false)},
	}
}

// vswitchPolicy fills what p leaves unset with ESXi's defaults, so that every
// vSwitch policy setting has a value, as on ESXi.
func vswitchPolicy(p *types.HostNetworkPolicy, nics []string) *types.HostNetworkPolicy {
	if p == nil {
		return defaultPolicy(nics)
	}
	merged := mergePolicy(*defaultPolicy(nics), p)
	return &merged
}

// noOverride makes every policy group of a port group present, members unset
// where nothing is overridden, as ESXi reports a port group's spec.policy.
func noOverride(p *types.HostNetworkPolicy) {
	if p.Security == nil {
		p.Security = &types.HostNetworkSecurityPolicy{}
	}
	if p.NicTeaming == nil {
		p.NicTeaming = &types.HostNicTeamingPolicy{}
	}
	if p.NicTeaming.FailureCriteria == nil {
		p.NicTeaming.FailureCriteria = &types.HostNicFailureCriteria{}
	}
	if p.OffloadPolicy == nil {
		p.OffloadPolicy = &types.HostNetOffloadCapabilities{}
	}
	if p.ShapingPolicy == nil {
		p.ShapingPolicy = &types.HostNetworkTrafficShapingPolicy{}
	}
}

// computedPolicy merges a port group's overrides over its vSwitch policy.
func computedPolicy(vs *types.HostNetworkPolicy, pg *types.HostNetworkPolicy) types.HostNetworkPolicy {
	out := types.HostNetworkPolicy{}
	if vs != nil {
		out = *clone(vs)
	}
	if pg == nil {
		return out
	}
	return mergePolicy(out, pg)
}

func pick(over, base *bool) *bool {
	if over != nil {
		return over
	}
	return base
}

// mergePolicy returns base with every setting that over sets.
func mergePolicy(base types.HostNetworkPolicy, over *types.HostNetworkPolicy) types.HostNetworkPolicy {
	out := base
	if s := over.Security; s != nil {
		b := types.HostNetworkSecurityPolicy{}
		if base.Security != nil {
			b = *base.Security
		}
		b.AllowPromiscuous = pick(s.AllowPromiscuous, b.AllowPromiscuous)
		b.MacChanges = pick(s.MacChanges, b.MacChanges)
		b.ForgedTransmits = pick(s.ForgedTransmits, b.ForgedTransmits)
		out.Security = &b
	}
	if t := over.NicTeaming; t != nil {
		b := types.HostNicTeamingPolicy{}
		if base.NicTeaming != nil {
			b = *base.NicTeaming
		}
		if t.Policy != "" {
			b.Policy = t.Policy
		}
		b.ReversePolicy = pick(t.ReversePolicy, b.ReversePolicy)
		b.NotifySwitches = pick(t.NotifySwitches, b.NotifySwitches)
		b.RollingOrder = pick(t.RollingOrder, b.RollingOrder)
		if t.NicOrder != nil {
			b.NicOrder = t.NicOrder
		}
		b.FailureCriteria = mergeFailure(b.FailureCriteria, t.FailureCriteria)
		out.NicTeaming = &b
	}
	if o := over.OffloadPolicy; o != nil {
		b := types.HostNetOffloadCapabilities{}
		if base.OffloadPolicy != nil {
			b = *base.OffloadPolicy
		}
		b.CsumOffload = pick(o.CsumOffload, b.CsumOffload)
		b.TcpSegmentation = pick(o.TcpSegmentation, b.TcpSegmentation)
		b.ZeroCopyXmit = pick(o.ZeroCopyXmit, b.ZeroCopyXmit)
		out.OffloadPolicy = &b
	}
	if sh := over.ShapingPolicy; sh != nil && sh.Enabled != nil {
		c := *sh
		out.ShapingPolicy = &c
	}
	return out
}

func mergeFailure(base, over *types.HostNicFailureCriteria) *types.HostNicFailureCriteria {
	if over == nil {
		return base
	}
	b := types.HostNicFailureCriteria{}
	if base != nil {
		b = *base
	}
	if over.CheckSpeed != "" {
		b.CheckSpeed, b.Speed = over.CheckSpeed, over.Speed
	}
	b.CheckDuplex = pick(over.CheckDuplex, b.CheckDuplex)
	b.FullDuplex = pick(over.FullDuplex, b.FullDuplex)
	if over.CheckErrorPercent != nil {
		b.CheckErrorPercent, b.Percentage = over.CheckErrorPercent, over.Percentage
	}
	b.CheckBeacon = pick(over.CheckBeacon, b.CheckBeacon)
	return &b
}
