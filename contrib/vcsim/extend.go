package main

import (
	"fmt"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// uplinks every host has, so vSwitch specs can name real physical nics.
const uplinkCount = 4

// Extend gives every existing host, and every host added later, its own
// managers that keep what was written.
func Extend(model *simulator.Model) {
	_ = model
	h := &hostHook{self: types.ManagedObjectReference{Type: "VcsimHostHook", Value: "host-hook"}, done: map[types.ManagedObjectReference]bool{}}
	simulator.Map.AddHandler(h)
	for _, e := range simulator.Map.All("HostSystem") {
		if host, ok := e.(*simulator.HostSystem); ok {
			h.install(host)
		}
	}
}

// hostHook sees every object put into the registry and equips new hosts.
type hostHook struct {
	self types.ManagedObjectReference
	mu   sync.Mutex
	done map[types.ManagedObjectReference]bool
}

func (h *hostHook) Reference() types.ManagedObjectReference { return h.self }

func (h *hostHook) PutObject(obj mo.Reference) {
	if host, ok := obj.(*simulator.HostSystem); ok {
		h.install(host)
	}
}

func (h *hostHook) UpdateObject(mo.Reference, []types.PropertyChange) {}

func (h *hostHook) RemoveObject(types.ManagedObjectReference) {}

func (h *hostHook) install(hs *simulator.HostSystem) {
	h.mu.Lock()
	if h.done[hs.Self] || hs.Self.Value == "" {
		h.mu.Unlock()
		return
	}
	h.done[hs.Self] = true
	h.mu.Unlock()

	host := &hs.HostSystem
	simulator.Map.WithLock(host, func() {
		ensureUplinks(host)
		recompute(host.Config.Network)
		if host.Config.StorageDevice != nil {
			host.Config.StorageDevice = clone(host.Config.StorageDevice)
		}
	})
	cm := &host.ConfigManager

	if ref := cm.NetworkSystem; ref != nil {
		if stock, ok := simulator.Map.Get(*ref).(*simulator.HostNetworkSystem); ok {
			simulator.Map.Put(newNetworkSystem(stock, host))
		}
	}
	if ref := cm.StorageSystem; ref != nil {
		if stock, ok := simulator.Map.Get(*ref).(*simulator.HostStorageSystem); ok {
			simulator.Map.Put(newStorageSystem(stock, host))
		}
	}
	if ref := cm.DatastoreSystem; ref != nil {
		if stock, ok := simulator.Map.Get(*ref).(*simulator.HostDatastoreSystem); ok {
			stock.Host = host
			simulator.Map.Put(&DatastoreSystem{HostDatastoreSystem: *stock, host: host})
		}
	}

	opt := newOptionManager(host)
	opt.Self.Type = "OptionManager"
	dt := newDateTimeSystem(host)
	dt.Self.Type = "HostDateTimeSystem"
	svc := newServiceSystem(host)
	svc.Self.Type = "HostServiceSystem"
	acc := newAccessManager(host)
	acc.Self.Type = "HostAccessManager"
	nic := newNicManager(host)
	nic.Self.Type = "HostVirtualNicManager"
	snmp := newSnmpSystem()
	snmp.Self.Type = "HostSnmpSystem"
	accounts := newAccountManager()
	accounts.Self.Type = "HostLocalAccountManager"

	refs := []struct {
		field **types.ManagedObjectReference
		obj   mo.Reference
	}{
		{&cm.AdvancedOption, opt},
		{&cm.DateTimeSystem, dt},
		{&cm.ServiceSystem, svc},
		{&cm.HostAccessManager, acc},
		{&cm.VirtualNicManager, nic},
		{&cm.SnmpSystem, snmp},
		{&cm.AccountManager, accounts},
	}
	for _, r := range refs {
		ref := simulator.Map.Put(r.obj).Reference()
		simulator.Map.WithLock(host, func() { *r.field = &ref })
	}
}

// ensureUplinks gives the host vmnic0..vmnic3, modelled on its first nic.
func ensureUplinks(host *mo.HostSystem) {
	n := host.Config.Network
	if len(n.Pnic) == 0 {
		return
	}
	for i := 0; i < uplinkCount; i++ {
		dev := fmt.Sprintf("vmnic%d", i)
		found := false
		for _, p := range n.Pnic {
			found = found || p.Device == dev
		}
		if found {
			continue
		}
		p := *clone(&n.Pnic[0])
		p.Device = dev
		p.Key = pnicKeyPrefix + dev
		p.Mac = vnicMac(host, dev)
		p.Pci = fmt.Sprintf("0000:%02x:00.0", 0x0b+i)
		p.FcoeConfiguration = nil
		n.Pnic = append(n.Pnic, p)
	}
}
