package main

import (
	"fmt"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// softwareIscsi is the host's software iSCSI adapter, if enabled once.
func softwareIscsi(sd *types.HostStorageDeviceInfo) *types.HostInternetScsiHba {
	for _, a := range sd.HostBusAdapter {
		if h, ok := a.(*types.HostInternetScsiHba); ok && h.IsSoftwareBased {
			return h
		}
	}
	return nil
}

// freeHba is the first vmhba name from vmhba64 up that no adapter uses
// (the stock inventory already has a block adapter vmhba64, so usually vmhba65).
func freeHba(sd *types.HostStorageDeviceInfo) string {
	for i := 64; ; i++ {
		name := fmt.Sprintf("vmhba%d", i)
		used := false
		for _, a := range sd.HostBusAdapter {
			used = used || a.GetHostHostBusAdapter().Device == name
		}
		if !used {
			return name
		}
	}
}

// StorageSystem adds the software iSCSI adapter to the stock storage system;
// its device info IS the host's config.storageDevice.
type StorageSystem struct {
	simulator.HostStorageSystem
	host *mo.HostSystem
}

func newStorageSystem(stock *simulator.HostStorageSystem, host *mo.HostSystem) *StorageSystem {
	stock.Host = host
	stock.StorageDeviceInfo = host.Config.StorageDevice
	return &StorageSystem{HostStorageSystem: *stock, host: host}
}

func (s *StorageSystem) iscsi(device string) (*types.HostInternetScsiHba, *soap.Fault) {
	for _, a := range s.host.Config.StorageDevice.HostBusAdapter {
		if h, ok := a.(*types.HostInternetScsiHba); ok && h.Device == device {
			return h, nil
		}
	}
	return nil, simulator.Fault("iSCSI adapter "+device+" not found (enable software iSCSI first)", &types.NotFound{})
}

func (s *StorageSystem) UpdateSoftwareInternetScsiEnabled(ctx *simulator.Context, req *types.UpdateSoftwareInternetScsiEnabled) soap.HasFault {
	ctx.WithLock(s.host, func() {
		sd := s.host.Config.StorageDevice
		sd.SoftwareInternetScsiEnabled = req.Enabled
		if req.Enabled && softwareIscsi(sd) == nil {
			iscsiDevice := freeHba(sd)
			sd.HostBusAdapter = append(sd.HostBusAdapter, &types.HostInternetScsiHba{
				HostHostBusAdapter: types.HostHostBusAdapter{
					Key: "key-vim.host.InternetScsiHba-" + iscsiDevice, Device: iscsiDevice,
					Status: "online", Model: "iSCSI Software Adapter", Driver: "iscsi_vmk",
				},
				IsSoftwareBased: true,
				CanBeDisabled:   types.NewBool(true),
				IScsiName:       "iqn.1998-01.com.vmware:" + strings.ReplaceAll(s.host.Name, ".", "-"),
				DiscoveryCapabilities: types.HostInternetScsiHbaDiscoveryCapabilities{
					SendTargetsDiscoverySettable: true, StaticTargetDiscoverySettable: true,
				},
				DiscoveryProperties:        types.HostInternetScsiHbaDiscoveryProperties{SendTargetsDiscoveryEnabled: true, StaticTargetDiscoveryEnabled: true},
				AuthenticationCapabilities: types.HostInternetScsiHbaAuthenticationCapabilities{ChapAuthSettable: true, MutualChapSettable: types.NewBool(true), TargetChapSettable: types.NewBool(true), TargetMutualChapSettable: types.NewBool(true)},
			})
		}
		s.StorageDeviceInfo = sd
	})
	changed(s.host, "config.storageDevice")
	return &methods.UpdateSoftwareInternetScsiEnabledBody{Res: &types.UpdateSoftwareInternetScsiEnabledResponse{}}
}

func sendTargetKey(t types.HostInternetScsiHbaSendTarget) string {
	port := t.Port
	if port == 0 {
		port = 3260
	}
	return fmt.Sprintf("%s:%d", t.Address, port)
}

func (s *StorageSystem) AddInternetScsiSendTargets(ctx *simulator.Context, req *types.AddInternetScsiSendTargets) soap.HasFault {
	body := &methods.AddInternetScsiSendTargetsBody{}
	ctx.WithLock(s.host, func() {
		h, f := s.iscsi(req.IScsiHbaDevice)
		if f != nil {
			body.Fault_ = f
			return
		}
		for _, t := range req.Targets {
			if t.Address == "" {
				body.Fault_ = simulator.Fault("send target without an address", &types.InvalidArgument{InvalidProperty: "targets.address"})
				return
			}
		}
		for _, t := range req.Targets {
			exists := false
			for _, c := range h.ConfiguredSendTarget {
				exists = exists || sendTargetKey(c) == sendTargetKey(t)
			}
			if !exists {
				if t.Port == 0 {
					t.Port = 3260
				}
				h.ConfiguredSendTarget = append(h.ConfiguredSendTarget, t)
			}
		}
		body.Res = &types.AddInternetScsiSendTargetsResponse{}
	})
	if body.Fault_ == nil {
		changed(s.host, "config.storageDevice")
	}
	return body
}

func (s *StorageSystem) RemoveInternetScsiSendTargets(ctx *simulator.Context, req *types.RemoveInternetScsiSendTargets) soap.HasFault {
	body := &methods.RemoveInternetScsiSendTargetsBody{}
	ctx.WithLock(s.host, func() {
		h, f := s.iscsi(req.IScsiHbaDevice)
		if f != nil {
			body.Fault_ = f
			return
		}
		drop := map[string]bool{}
		for _, t := range req.Targets {
			drop[sendTargetKey(t)] = true
		}
		var keep []types.HostInternetScsiHbaSendTarget
		for _, c := range h.ConfiguredSendTarget {
			if !drop[sendTargetKey(c)] {
				keep = append(keep, c)
			}
		}
		h.ConfiguredSendTarget = keep
		body.Res = &types.RemoveInternetScsiSendTargetsResponse{}
	})
	if body.Fault_ == nil {
		changed(s.host, "config.storageDevice")
	}
	return body
}

func (s *StorageSystem) UpdateInternetScsiAuthenticationProperties(ctx *simulator.Context, req *types.UpdateInternetScsiAuthenticationProperties) soap.HasFault {
	body := &methods.UpdateInternetScsiAuthenticationPropertiesBody{}
	ctx.WithLock(s.host, func() {
		h, f := s.iscsi(req.IScsiHbaDevice)
		if f != nil {
			body.Fault_ = f
			return
		}
		props := req.AuthenticationProperties
		if req.TargetSet != nil && len(req.TargetSet.SendTargets) > 0 {
			for i := range h.ConfiguredSendTarget {
				for _, t := range req.TargetSet.SendTargets {
					if sendTargetKey(h.ConfiguredSendTarget[i]) == sendTargetKey(t) {
						p := props
						h.ConfiguredSendTarget[i].AuthenticationProperties = &p
					}
				}
			}
		} else {
			h.AuthenticationProperties = props
		}
		body.Res = &types.UpdateInternetScsiAuthenticationPropertiesResponse{}
	})
	if body.Fault_ == nil {
		changed(s.host, "config.storageDevice")
	}
	return body
}

func (s *StorageSystem) UpdateInternetScsiName(ctx *simulator.Context, req *types.UpdateInternetScsiName) soap.HasFault {
	body := &methods.UpdateInternetScsiNameBody{}
	ctx.WithLock(s.host, func() {
		h, f := s.iscsi(req.IScsiHbaDevice)
		if f != nil {
			body.Fault_ = f
			return
		}
		h.IScsiName = req.IScsiName
		body.Res = &types.UpdateInternetScsiNameResponse{}
	})
	if body.Fault_ == nil {
		changed(s.host, "config.storageDevice")
	}
	return body
}

// DatastoreSystem mounts NAS datastores without a local directory; a NAS
// datastore with the same remote is one object shared by all hosts mounting it.
type DatastoreSystem struct {
	simulator.HostDatastoreSystem
	host *mo.HostSystem
}

func (d *DatastoreSystem) CreateNasDatastore(ctx *simulator.Context, req *types.CreateNasDatastore) soap.HasFault {
	body := &methods.CreateNasDatastoreBody{}
	spec := req.Spec
	if spec.LocalPath == "" || spec.RemoteHost == "" || spec.RemotePath == "" {
		body.Fault_ = simulator.Fault("NAS spec needs localPath, remoteHost and remotePath", &types.InvalidArgument{InvalidProperty: "spec"})
		return body
	}
	if spec.Type == "" {
		spec.Type = string(types.HostFileSystemVolumeFileSystemTypeNFS)
	}
	dc := datacenterOf(d.host.Self)
	if dc == nil {
		body.Fault_ = simulator.Fault("host has no datacenter", &types.HostConfigFault{})
		return body
	}
	folder, _ := simulator.Map.Get(dc.DatastoreFolder).(*simulator.Folder)
	if folder == nil {
		body.Fault_ = simulator.Fault("datacenter has no datastore folder", &types.HostConfigFault{})
		return body
	}
	var ds *simulator.Datastore
	if e := simulator.Map.FindByName(spec.LocalPath, folder.ChildEntity); e != nil {
		ds, _ = e.(*simulator.Datastore)
		nas, ok := nasInfo(ds)
		if !ok || nas.Nas.RemoteHost != spec.RemoteHost || nas.Nas.RemotePath != spec.RemotePath {
			body.Fault_ = simulator.Fault("datastore "+spec.LocalPath+" exists with another backing", &types.DuplicateName{Name: spec.LocalPath, Object: e.Reference()})
			return body
		}
		for _, m := range ds.Host {
			if m.Key == d.host.Self {
				body.Fault_ = simulator.Fault("datastore "+spec.LocalPath+" is already mounted on this host", &types.DuplicateName{Name: spec.LocalPath, Object: ds.Self})
				return body
			}
		}
	} else {
		ds = &simulator.Datastore{}
		ds.Name = spec.LocalPath
		ds.Self = types.ManagedObjectReference{Type: "Datastore", Value: fmt.Sprintf("nas-%s:%s@%s", spec.RemoteHost, spec.RemotePath, folder.Self.Value)}
		url := fmt.Sprintf("ds:///vmfs/volumes/%s/", strings.ReplaceAll(spec.RemoteHost+spec.RemotePath, "/", "-"))
		ds.Info = &types.NasDatastoreInfo{
			DatastoreInfo: types.DatastoreInfo{Name: spec.LocalPath, Url: url, FreeSpace: 512 << 30, MaxFileSize: 62 << 40},
			Nas: &types.HostNasVolume{
				HostFileSystemVolume: types.HostFileSystemVolume{Name: spec.LocalPath, Type: spec.Type, Capacity: 1 << 40},
				RemoteHost:           spec.RemoteHost, RemotePath: spec.RemotePath, UserName: spec.UserName,
				RemoteHostNames: spec.RemoteHostNames, SecurityType: spec.SecurityType,
			},
		}
		ref := ds.Self
		ds.Summary = types.DatastoreSummary{
			Datastore: &ref, Name: spec.LocalPath, Url: url, Capacity: 1 << 40, FreeSpace: 512 << 30,
			Type: spec.Type, Accessible: true, MaintenanceMode: string(types.DatastoreSummaryMaintenanceModeStateNormal),
		}
		ds.Capability = types.DatastoreCapability{DirectoryHierarchySupported: true, PerFileThinProvisioningSupported: true}
		ctx.WithLock(folder, func() { folder.ChildEntity = append(folder.ChildEntity, ref) })
		simulator.Map.PutEntity(folder, ds)
		simulator.Map.AddReference(dc, &dc.Datastore, ref)
	}
	simulator.Map.WithLock(ds, func() {
		ds.Host = append(ds.Host, types.DatastoreHostMount{
			Key: d.host.Self,
			MountInfo: types.HostMountInfo{
				Path: "/vmfs/volumes/" + spec.LocalPath, AccessMode: spec.AccessMode,
				Mounted: types.NewBool(true), Accessible: types.NewBool(true),
			},
		})
	})
	if simulator.FindReference(d.Datastore, ds.Self) == nil {
		d.Datastore = append(d.Datastore, ds.Self) // d is locked by the dispatch already
	}
	simulator.Map.AddReference(d.host, &d.host.Datastore, ds.Self)
	if nas, ok := nasInfo(ds); ok {
		// Clients read a host's mounts from config.fileSystemVolume, as on a real host.
		mount := types.HostFileSystemMountInfo{
			MountInfo: types.HostMountInfo{Path: "/vmfs/volumes/" + spec.LocalPath, AccessMode: spec.AccessMode,
				Mounted: types.NewBool(true), Accessible: types.NewBool(true)},
			Volume: nas.Nas,
		}
		simulator.Map.WithLock(d.host, func() {
			if d.host.Config.FileSystemVolume == nil {
				d.host.Config.FileSystemVolume = &types.HostFileSystemVolumeInfo{}
			}
			fsv := d.host.Config.FileSystemVolume
			fsv.MountInfo = append(fsv.MountInfo, mount)
		})
	}
	changed(d.host, "config.fileSystemVolume")
	body.Res = &types.CreateNasDatastoreResponse{Returnval: ds.Self}
	return body
}

func nasInfo(ds *simulator.Datastore) (*types.NasDatastoreInfo, bool) {
	if ds == nil {
		return nil, false
	}
	nas, ok := ds.Info.(*types.NasDatastoreInfo)
	return nas, ok && nas.Nas != nil
}

func (d *DatastoreSystem) RemoveDatastore(ctx *simulator.Context, req *types.RemoveDatastore) soap.HasFault {
	body := &methods.RemoveDatastoreBody{}
	ds, _ := simulator.Map.Get(req.Datastore).(*simulator.Datastore)
	if ds == nil {
		body.Fault_ = simulator.Fault("datastore "+req.Datastore.Value+" not found", &types.NotFound{})
		return body
	}
	mounted := false
	simulator.Map.WithLock(ds, func() {
		var keep []types.DatastoreHostMount
		for _, m := range ds.Host {
			if m.Key == d.host.Self {
				mounted = true
			} else {
				keep = append(keep, m)
			}
		}
		ds.Host = keep
	})
	if !mounted {
		body.Fault_ = simulator.Fault("datastore "+ds.Name+" is not mounted on this host", &types.NotFound{})
		return body
	}
	simulator.Map.WithLock(d.host, func() {
		if fsv := d.host.Config.FileSystemVolume; fsv != nil {
			var keep []types.HostFileSystemMountInfo
			for _, m := range fsv.MountInfo {
				if m.MountInfo.Path != "/vmfs/volumes/"+ds.Name {
					keep = append(keep, m)
				}
			}
			fsv.MountInfo = keep
		}
	})
	simulator.RemoveReference(&d.Datastore, ds.Self) // d is locked by the dispatch already
	simulator.Map.RemoveReference(d.host, &d.host.Datastore, ds.Self)
	if len(ds.Host) == 0 && len(ds.Vm) == 0 {
		if dc := datacenterOf(ds.Self); dc != nil {
			if folder, _ := simulator.Map.Get(dc.DatastoreFolder).(*simulator.Folder); folder != nil {
				simulator.Map.RemoveReference(folder, &folder.ChildEntity, ds.Self)
			}
			simulator.Map.RemoveReference(dc, &dc.Datastore, ds.Self)
		}
		simulator.Map.Remove(ds.Self)
	}
	changed(d.host, "config.fileSystemVolume")
	body.Res = &types.RemoveDatastoreResponse{}
	return body
}
