package main

import (
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// changed tells the property collectors that properties of a host changed.  The managers this
// launcher adds write the HostSystem's fields directly, which WaitForUpdatesEx would never see;
// Map.Update hands the current values to every collector that has a filter on the host, as the
// stock simulator does for the objects it changes itself.  Call it outside the host's lock
// (it takes it).
func changed(host *mo.HostSystem, paths ...string) {
	simulator.Map.WithLock(host, func() {
		if host.Config == nil {
			return
		}
		var changes []types.PropertyChange
		for _, p := range expand(paths) {
			if val := hostValue(host, p); val != nil {
				changes = append(changes, types.PropertyChange{Name: p, Op: types.PropertyChangeOpAssign, Val: val})
			}
		}
		if len(changes) == 0 {
			return
		}
		// Update also assigns the values, as new copies; the managers' own references into
		// config (the storage system's device info IS config.storageDevice) must stay valid.
		saved := *host.Config
		simulator.Map.Update(host, changes)
		*host.Config = saved
	})
}

// networkParts are the parts of config.network the managers write.  A change of the network
// is reported per part, as vCenter reports it to a filter on a part (config.network.vnic);
// a filter on config.network itself still gets one change, with the whole value.
var networkParts = []string{"config.network.vswitch", "config.network.portgroup",
	"config.network.vnic", "config.network.dnsConfig"}

func expand(paths []string) []string {
	var out []string
	for _, p := range paths {
		if p == "config.network" {
			out = append(out, networkParts...)
		} else {
			out = append(out, p)
		}
	}
	return out
}

// hostValue is the current value of one of the config properties the managers write.
func hostValue(host *mo.HostSystem, path string) interface{} {
	c := host.Config
	if c.Network == nil && strings.HasPrefix(path, "config.network.") {
		return nil
	}
	switch path {
	case "config.network.vswitch":
		return append([]types.HostVirtualSwitch{}, c.Network.Vswitch...)
	case "config.network.portgroup":
		return append([]types.HostPortGroup{}, c.Network.Portgroup...)
	case "config.network.vnic":
		return append([]types.HostVirtualNic{}, c.Network.Vnic...)
	case "config.network.dnsConfig":
		return c.Network.DnsConfig
	case "config.dateTimeInfo":
		if c.DateTimeInfo != nil {
			return *c.DateTimeInfo
		}
	case "config.service":
		if c.Service != nil {
			return *c.Service
		}
	case "config.option":
		return append([]types.BaseOptionValue{}, c.Option...)
	case "config.virtualNicManagerInfo":
		if c.VirtualNicManagerInfo != nil {
			return *c.VirtualNicManagerInfo
		}
	case "config.lockdownMode":
		return c.LockdownMode
	case "config.fileSystemVolume":
		if c.FileSystemVolume != nil {
			return *c.FileSystemVolume
		}
	case "config.storageDevice":
		if c.StorageDevice != nil {
			return *c.StorageDevice
		}
	}
	return nil
}
