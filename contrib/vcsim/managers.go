package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// DateTimeSystem keeps NTP servers and time zone, visible in config.dateTimeInfo.
type DateTimeSystem struct {
	mo.HostDateTimeSystem
	host *mo.HostSystem
}

func newDateTimeSystem(host *mo.HostSystem) *DateTimeSystem {
	s := &DateTimeSystem{host: host}
	s.DateTimeInfo = types.HostDateTimeInfo{
		TimeZone:            types.HostDateTimeSystemTimeZone{Key: "UTC", Name: "UTC", Description: "UTC", GmtOffset: 0},
		SystemClockProtocol: "ntp",
		NtpConfig:           &types.HostNtpConfig{},
	}
	s.mirror()
	return s
}

func (s *DateTimeSystem) mirror() {
	info := *clone(&s.DateTimeInfo)
	simulator.Map.WithLock(s.host, func() { s.host.Config.DateTimeInfo = &info })
	changed(s.host, "config.dateTimeInfo")
}

func (s *DateTimeSystem) UpdateDateTimeConfig(req *types.UpdateDateTimeConfig) soap.HasFault {
	body := &methods.UpdateDateTimeConfigBody{}
	if req.Config.TimeZone != "" {
		s.DateTimeInfo.TimeZone = types.HostDateTimeSystemTimeZone{Key: req.Config.TimeZone, Name: req.Config.TimeZone, Description: req.Config.TimeZone}
	}
	if req.Config.NtpConfig != nil {
		for _, srv := range req.Config.NtpConfig.Server {
			if strings.TrimSpace(srv) == "" || strings.ContainsAny(srv, " \t") {
				body.Fault_ = simulator.Fault(fmt.Sprintf("ntp server %q is not a host name or address", srv), &types.InvalidArgument{InvalidProperty: "ntpConfig.server"})
				return body
			}
		}
		ntp := *req.Config.NtpConfig
		s.DateTimeInfo.NtpConfig = &ntp
	}
	s.mirror()
	body.Res = &types.UpdateDateTimeConfigResponse{}
	return body
}

func (s *DateTimeSystem) QueryDateTime(*types.QueryDateTime) soap.HasFault {
	return &methods.QueryDateTimeBody{Res: &types.QueryDateTimeResponse{Returnval: time.Now().UTC()}}
}

func (s *DateTimeSystem) UpdateDateTime(*types.UpdateDateTime) soap.HasFault {
	return &methods.UpdateDateTimeBody{Res: &types.UpdateDateTimeResponse{}}
}

func (s *DateTimeSystem) RefreshDateTimeSystem(*types.RefreshDateTimeSystem) soap.HasFault {
	return &methods.RefreshDateTimeSystemBody{Res: &types.RefreshDateTimeSystemResponse{}}
}

func (s *DateTimeSystem) QueryAvailableTimeZones(*types.QueryAvailableTimeZones) soap.HasFault {
	return &methods.QueryAvailableTimeZonesBody{Res: &types.QueryAvailableTimeZonesResponse{
		Returnval: []types.HostDateTimeSystemTimeZone{{Key: "UTC", Name: "UTC", Description: "UTC"}},
	}}
}

// ServiceSystem starts, stops and sets policies of host services, visible in config.service.
type ServiceSystem struct {
	mo.HostServiceSystem
	host *mo.HostSystem
}

var extraServices = []types.HostService{
	{Key: "vpxa", Label: "VMware vCenter Agent", Required: false, Running: true, Policy: "on"},
	{Key: "vmsyslogd", Label: "Syslog Server", Required: true, Running: true, Policy: "on"},
	{Key: "xorg", Label: "X.Org Server", Running: false, Policy: "on"},
	{Key: "sfcbd-watchdog", Label: "CIM Server", Running: false, Policy: "on"},
	{Key: "snmpd", Label: "SNMP Server", Running: false, Policy: "on"},
	{Key: "ntpd", Label: "NTP Daemon", Running: false, Policy: "off"},
	{Key: "TSM-SSH", Label: "SSH", Running: false, Policy: "off"},
	{Key: "TSM", Label: "ESXi Shell", Running: false, Policy: "off"},
	{Key: "DCUI", Label: "Direct Console UI", Running: true, Policy: "on"},
	{Key: "lbtd", Label: "Load-Based Teaming Daemon", Running: true, Policy: "on"},
}

func newServiceSystem(host *mo.HostSystem) *ServiceSystem {
	s := &ServiceSystem{host: host}
	if host.Config.Service != nil {
		s.ServiceInfo = *clone(host.Config.Service)
	}
	for _, svc := range extraServices {
		if s.find(svc.Key) == nil {
			s.ServiceInfo.Service = append(s.ServiceInfo.Service, svc)
		}
	}
	sort.Slice(s.ServiceInfo.Service, func(i, j int) bool { return s.ServiceInfo.Service[i].Key < s.ServiceInfo.Service[j].Key })
	s.mirror()
	return s
}

func (s *ServiceSystem) find(key string) *types.HostService {
	for i := range s.ServiceInfo.Service {
		if s.ServiceInfo.Service[i].Key == key {
			return &s.ServiceInfo.Service[i]
		}
	}
	return nil
}

func (s *ServiceSystem) mirror() {
	info := *clone(&s.ServiceInfo)
	simulator.Map.WithLock(s.host, func() { s.host.Config.Service = &info })
	changed(s.host, "config.service")
}

func (s *ServiceSystem) service(id string) (*types.HostService, *soap.Fault) {
	svc := s.find(id)
	if svc == nil {
		return nil, simulator.Fault("no service "+id+" on this host", &types.NotFound{})
	}
	return svc, nil
}

func (s *ServiceSystem) UpdateServicePolicy(req *types.UpdateServicePolicy) soap.HasFault {
	body := &methods.UpdateServicePolicyBody{}
	svc, f := s.service(req.Id)
	if f != nil {
		body.Fault_ = f
		return body
	}
	switch req.Policy {
	case "on", "off", "automatic":
	default:
		body.Fault_ = simulator.Fault(fmt.Sprintf("service policy %q is not on, off or automatic", req.Policy), &types.InvalidArgument{InvalidProperty: "policy"})
		return body
	}
	svc.Policy = req.Policy
	s.mirror()
	body.Res = &types.UpdateServicePolicyResponse{}
	return body
}

func (s *ServiceSystem) setRunning(id string, running bool) *soap.Fault {
	svc, f := s.service(id)
	if f != nil {
		return f
	}
	svc.Running = running
	s.mirror()
	return nil
}

func (s *ServiceSystem) StartService(req *types.StartService) soap.HasFault {
	return &methods.StartServiceBody{Fault_: s.setRunning(req.Id, true), Res: &types.StartServiceResponse{}}
}

func (s *ServiceSystem) StopService(req *types.StopService) soap.HasFault {
	return &methods.StopServiceBody{Fault_: s.setRunning(req.Id, false), Res: &types.StopServiceResponse{}}
}

func (s *ServiceSystem) RestartService(req *types.RestartService) soap.HasFault {
	return &methods.RestartServiceBody{Fault_: s.setRunning(req.Id, true), Res: &types.RestartServiceResponse{}}
}

func (s *ServiceSystem) RefreshServices(*types.RefreshServices) soap.HasFault {
	return &methods.RefreshServicesBody{Res: &types.RefreshServicesResponse{}}
}

// AccessManager holds the lockdown mode and its exception users.
type AccessManager struct {
	mo.HostAccessManager
	host       *mo.HostSystem
	exceptions []string
	system     []string
}

func newAccessManager(host *mo.HostSystem) *AccessManager {
	m := &AccessManager{host: host}
	m.LockdownMode = types.HostLockdownModeLockdownDisabled
	if host.Config.LockdownMode != "" {
		m.LockdownMode = host.Config.LockdownMode
	}
	return m
}

func (m *AccessManager) ChangeLockdownMode(req *types.ChangeLockdownMode) soap.HasFault {
	body := &methods.ChangeLockdownModeBody{}
	switch req.Mode {
	case types.HostLockdownModeLockdownDisabled, types.HostLockdownModeLockdownNormal, types.HostLockdownModeLockdownStrict:
	default:
		body.Fault_ = simulator.Fault(fmt.Sprintf("lockdown mode %q is unknown", req.Mode), &types.InvalidArgument{InvalidProperty: "mode"})
		return body
	}
	m.LockdownMode = req.Mode
	simulator.Map.WithLock(m.host, func() {
		m.host.Config.LockdownMode = req.Mode
		m.host.Config.AdminDisabled = types.NewBool(req.Mode != types.HostLockdownModeLockdownDisabled)
	})
	changed(m.host, "config.lockdownMode")
	body.Res = &types.ChangeLockdownModeResponse{}
	return body
}

func (m *AccessManager) QueryLockdownExceptions(*types.QueryLockdownExceptions) soap.HasFault {
	return &methods.QueryLockdownExceptionsBody{Res: &types.QueryLockdownExceptionsResponse{Returnval: append([]string{}, m.exceptions...)}}
}

func (m *AccessManager) UpdateLockdownExceptions(req *types.UpdateLockdownExceptions) soap.HasFault {
	m.exceptions = append([]string{}, req.Users...)
	return &methods.UpdateLockdownExceptionsBody{Res: &types.UpdateLockdownExceptionsResponse{}}
}

func (m *AccessManager) QuerySystemUsers(*types.QuerySystemUsers) soap.HasFault {
	return &methods.QuerySystemUsersBody{Res: &types.QuerySystemUsersResponse{Returnval: append([]string{}, m.system...)}}
}

func (m *AccessManager) UpdateSystemUsers(req *types.UpdateSystemUsers) soap.HasFault {
	m.system = append([]string{}, req.Users...)
	return &methods.UpdateSystemUsersBody{Res: &types.UpdateSystemUsersResponse{}}
}

// NicManager selects vmknics for services (management, vmotion, vsan, ...),
// stored in config.virtualNicManagerInfo.
type NicManager struct {
	mo.HostVirtualNicManager
	host *mo.HostSystem
}

func newNicManager(host *mo.HostSystem) *NicManager {
	m := &NicManager{host: host}
	simulator.Map.WithLock(host, func() { syncNicManager(host) })
	m.refresh()
	return m
}

func (m *NicManager) refresh() {
	m.Info = *clone(m.host.Config.VirtualNicManagerInfo)
}

func (m *NicManager) netConfig(nicType string) (*types.VirtualNicManagerNetConfig, *soap.Fault) {
	for i := range m.host.Config.VirtualNicManagerInfo.NetConfig {
		if nc := &m.host.Config.VirtualNicManagerInfo.NetConfig[i]; nc.NicType == nicType {
			return nc, nil
		}
	}
	return nil, simulator.Fault("nic type "+nicType+" is unknown", &types.InvalidArgument{InvalidProperty: "nicType"})
}

func (m *NicManager) selectVnic(ctx *simulator.Context, nicType, device string, on bool) *soap.Fault {
	var fault *soap.Fault
	ctx.WithLock(m.host, func() {
		nc, f := m.netConfig(nicType)
		if f != nil {
			fault = f
			return
		}
		if findVnic(m.host.Config.Network, device) < 0 {
			fault = simulator.Fault("virtual nic "+device+" not found", &types.NotFound{})
			return
		}
		key := nicType + "." + vnicKeyPrefix + device
		var sel []string
		for _, k := range nc.SelectedVnic {
			if k != key {
				sel = append(sel, k)
			}
		}
		if on {
			sel = append(sel, key)
			sort.Strings(sel)
		}
		nc.SelectedVnic = sel
	})
	if fault == nil {
		m.refresh()
		changed(m.host, "config.virtualNicManagerInfo")
	}
	return fault
}

func (m *NicManager) SelectVnicForNicType(ctx *simulator.Context, req *types.SelectVnicForNicType) soap.HasFault {
	return &methods.SelectVnicForNicTypeBody{Fault_: m.selectVnic(ctx, req.NicType, req.Device, true), Res: &types.SelectVnicForNicTypeResponse{}}
}

func (m *NicManager) DeselectVnicForNicType(ctx *simulator.Context, req *types.DeselectVnicForNicType) soap.HasFault {
	return &methods.DeselectVnicForNicTypeBody{Fault_: m.selectVnic(ctx, req.NicType, req.Device, false), Res: &types.DeselectVnicForNicTypeResponse{}}
}

func (m *NicManager) QueryNetConfig(ctx *simulator.Context, req *types.QueryNetConfig) soap.HasFault {
	body := &methods.QueryNetConfigBody{}
	ctx.WithLock(m.host, func() {
		nc, f := m.netConfig(req.NicType)
		if f != nil {
			body.Fault_ = f
			return
		}
		body.Res = &types.QueryNetConfigResponse{Returnval: clone(nc)}
	})
	return body
}

// SnmpSystem keeps the agent configuration.
type SnmpSystem struct {
	mo.HostSnmpSystem
}

func newSnmpSystem() *SnmpSystem {
	s := &SnmpSystem{}
	s.Configuration = types.HostSnmpConfigSpec{Enabled: types.NewBool(false), Port: 161}
	s.Limits = types.HostSnmpSystemAgentLimits{
		MaxReadOnlyCommunities: 10, MaxTrapDestinations: 10, MaxCommunityLength: 64, MaxBufferSize: 1500,
		Capability: types.HostSnmpAgentCapabilityCOMPLETE,
	}
	return s
}

func (s *SnmpSystem) ReconfigureSnmpAgent(req *types.ReconfigureSnmpAgent) soap.HasFault {
	body := &methods.ReconfigureSnmpAgentBody{}
	if int32(len(req.Spec.ReadOnlyCommunities)) > s.Limits.MaxReadOnlyCommunities || int32(len(req.Spec.TrapTargets)) > s.Limits.MaxTrapDestinations {
		body.Fault_ = simulator.Fault("too many SNMP communities or trap targets", &types.InvalidArgument{InvalidProperty: "spec"})
		return body
	}
	s.Configuration = *clone(&req.Spec)
	body.Res = &types.ReconfigureSnmpAgentResponse{}
	return body
}

func (s *SnmpSystem) SendTestNotification(*types.SendTestNotification) soap.HasFault {
	return &methods.SendTestNotificationBody{Res: &types.SendTestNotificationResponse{}}
}
