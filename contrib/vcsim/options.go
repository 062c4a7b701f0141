package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// optionSpec is one advanced option as ESXi declares it in supportedOption.
// initial is the value a fresh host reports when it differs from the declared
// default (ESXi computes some at boot, e.g. Syslog.global.logDir); nil means
// the default.
type optionSpec struct {
	key     string
	summary string
	kind    types.BaseOptionType
	initial types.AnyType
}

func long(key string, min, max, def int64, summary string) optionSpec {
	return optionSpec{key: key, summary: summary, kind: &types.LongOption{Min: min, Max: max, DefaultValue: def}}
}

// intOpt is for hostd's integer options, which ESXi declares as IntOption
// (written as xsd:int); their bounds are not published, so 0..2^31-1 stands in.
func intOpt(key string, def int32, summary string) optionSpec {
	return optionSpec{key: key, summary: summary, kind: &types.IntOption{Min: 0, Max: 1<<31 - 1, DefaultValue: def}}
}

func str(key, def string, summary string) optionSpec {
	return optionSpec{key: key, summary: summary, kind: &types.StringOption{DefaultValue: def}}
}

func boolean(key string, def bool, summary string) optionSpec {
	return optionSpec{key: key, summary: summary, kind: &types.BoolOption{Supported: true, DefaultValue: def}}
}

// catalogue is the part of ESXi 6.5 U2's advanced-option list (the version the
// simulated hosts report) that the settings docs, the tests, the example estate
// and the benchmarks use, plus a few common hardening and tuning options. Types,
// defaults and ranges are ESXi's: vmkernel options (Net, Mem, Disk, NFS,
// UserVars) are LongOption, hostd's Security.* integers IntOption, Syslog and
// Config.* strings StringOption, hostd switches BoolOption.
var catalogue = []optionSpec{
	{key: "Config.HostAgent.log.level", summary: "Global log level of the host agent", kind: &types.StringOption{}, initial: "info"},
	boolean("Config.HostAgent.plugins.hostsvc.esxAdminsGroupAutoAdd", true, "Grant the ESX Admins directory group administrator rights"),
	boolean("Config.HostAgent.plugins.solo.enableMob", false, "Enable the managed object browser"),
	str("Config.Etc.issue", "", "Text shown before an SSH or local shell login"),
	str("Config.Etc.motd", "", "Text shown after an SSH or local shell login"),
	str("DCUI.Access", "root", "Local users with unconditional access to the DCUI, comma-separated"),
	long("Disk.QFullSampleSize", 0, 64, 0, "I/O samples watched for a lasting queue-full condition (0 disables throttling)"),
	long("Disk.QFullThreshold", 1, 16, 8, "BUSY or QFULL count that throttles a LUN's queue depth"),
	long("Mem.ShareForceSalting", 0, 2, 2, "Transparent page sharing salting: 0 none, 1 by VM salt, 2 within a VM only"),
	long("Net.BlockGuestBPDU", 0, 1, 0, "Drop BPDU frames sent by guests"),
	long("Net.TcpipHeapMax", 32, 1536, 512, "Largest size of the TCP/IP heap in MB (needs a reboot)"),
	long("Net.TcpipHeapSize", 0, 32, 0, "Initial size of the TCP/IP heap in MB (needs a reboot)"),
	long("NFS.MaxVolumes", 8, 256, 8, "Most NFS v3 volumes mounted at once"),
	intOpt("Security.AccountLockFailures", 5, "Failed logins before an account is locked (0 never locks)"),
	intOpt("Security.AccountUnlockTime", 900, "Seconds a locked account stays locked"),
	str("Security.PasswordQualityControl", "retry=3 min=disabled,disabled,disabled,7,7", "pam_passwdqc options for local passwords"),
	{key: "Syslog.global.logDir", summary: "Datastore path logs are written to", kind: &types.StringOption{}, initial: "[] /scratch/log"},
	boolean("Syslog.global.logDirUnique", false, "Write logs to a per-host subdirectory of logDir"),
	str("Syslog.global.logHost", "", "Remote syslog targets, comma-separated (udp://host:514, ssl://host:1514)"),
	long("UserVars.DcuiTimeOut", 0, 86400, 600, "Idle seconds before the DCUI logs out (0 never)"),
	long("UserVars.ESXiShellInteractiveTimeOut", 0, 86400, 0, "Idle seconds before an interactive shell logs out (0 never)"),
	long("UserVars.ESXiShellTimeOut", 0, 86400, 0, "Seconds before shell access is disabled again (0 never)"),
	long("UserVars.HostClientCEIPOptIn", 0, 2, 0, "Host Client CEIP: 0 ask, 1 yes, 2 no"),
	str("UserVars.HostClientWelcomeMessage", "Welcome to {{hostname}}", "Message shown at Host Client login"),
	long("UserVars.SuppressShellWarning", 0, 1, 0, "Hide the warning shown while shell access is enabled"),
}

// defaultOf is an option type's declared default as an option value.
func defaultOf(t types.BaseOptionType) types.AnyType {
	switch o := t.(type) {
	case *types.LongOption:
		return o.DefaultValue
	case *types.IntOption:
		return o.DefaultValue
	case *types.BoolOption:
		return o.DefaultValue
	case *types.StringOption:
		return o.DefaultValue
	case *types.FloatOption:
		return o.DefaultValue
	}
	return nil
}

// copyType gives each host its own copy of an option type.
func copyType(t types.BaseOptionType) types.BaseOptionType {
	switch o := t.(type) {
	case *types.LongOption:
		c := *o
		return &c
	case *types.IntOption:
		c := *o
		return &c
	case *types.BoolOption:
		c := *o
		return &c
	case *types.StringOption:
		c := *o
		return &c
	case *types.FloatOption:
		c := *o
		return &c
	}
	return t
}

// checkValue reports why v cannot be stored in an option of type t, as ESXi
// would refuse it: the wire type must match (xsd:long for LongOption, xsd:int
// for IntOption, ...) and numbers must be within min..max.
func checkValue(t types.BaseOptionType, v types.AnyType) string {
	if ro := t.GetOptionType().ValueIsReadonly; ro != nil && *ro {
		return "the option is read-only"
	}
	switch o := t.(type) {
	case *types.LongOption:
		n, ok := v.(int64)
		if !ok {
			return fmt.Sprintf("expected xsd:long, got %T", v)
		}
		if n < o.Min || n > o.Max {
			return fmt.Sprintf("%d is outside %d..%d", n, o.Min, o.Max)
		}
	case *types.IntOption:
		n, ok := v.(int32)
		if !ok {
			return fmt.Sprintf("expected xsd:int, got %T", v)
		}
		if n < o.Min || n > o.Max {
			return fmt.Sprintf("%d is outside %d..%d", n, o.Min, o.Max)
		}
	case *types.BoolOption:
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("expected xsd:boolean, got %T", v)
		}
	case *types.StringOption:
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("expected xsd:string, got %T", v)
		}
		if o.ValidCharacters != "" && strings.Trim(s, o.ValidCharacters) != "" {
			return fmt.Sprintf("%q has characters outside %q", s, o.ValidCharacters)
		}
	}
	return ""
}

// OptionManager is a per-host advanced-option list that publishes ESXi's
// supportedOption catalogue, refuses keys outside it and values of the wrong
// type, and mirrors itself into host.config.option.
type OptionManager struct {
	mo.OptionManager
	host *mo.HostSystem
	defs map[string]types.BaseOptionType
}

func newOptionManager(host *mo.HostSystem) *OptionManager {
	m := &OptionManager{host: host, defs: map[string]types.BaseOptionType{}}
	for _, o := range catalogue {
		def := types.OptionDef{
			ElementDescription: types.ElementDescription{Key: o.key, Description: types.Description{Label: o.key, Summary: o.summary}},
			OptionType:         copyType(o.kind),
		}
		m.SupportedOption = append(m.SupportedOption, def)
		m.defs[o.key] = def.OptionType
		value := o.initial
		if value == nil {
			value = defaultOf(o.kind)
		}
		m.Setting = append(m.Setting, &types.OptionValue{Key: o.key, Value: value})
	}
	m.sort()
	m.mirror()
	return m
}

func (m *OptionManager) sort() {
	sort.SliceStable(m.Setting, func(i, j int) bool {
		return m.Setting[i].GetOptionValue().Key < m.Setting[j].GetOptionValue().Key
	})
}

func (m *OptionManager) find(key string) *types.OptionValue {
	for _, o := range m.Setting {
		if v := o.GetOptionValue(); v.Key == key {
			return v
		}
	}
	return nil
}

func (m *OptionManager) mirror() {
	list := append([]types.BaseOptionValue{}, m.Setting...)
	simulator.Map.WithLock(m.host, func() { m.host.Config.Option = list })
	changed(m.host, "config.option")
}

// QueryOptions returns one option by exact name, a subtree for a name ending in
// a dot, or every option for an empty name; InvalidName when nothing matches.
func (m *OptionManager) QueryOptions(req *types.QueryOptions) soap.HasFault {
	body := &methods.QueryOptionsBody{}
	res := &types.QueryOptionsResponse{}
	for _, o := range m.Setting {
		key := o.GetOptionValue().Key
		if req.Name == "" || key == req.Name || (strings.HasSuffix(req.Name, ".") && strings.HasPrefix(key, req.Name)) {
			res.Returnval = append(res.Returnval, o)
		}
	}
	if len(res.Returnval) == 0 {
		body.Fault_ = simulator.Fault("A specified parameter was not correct: no option named "+req.Name, &types.InvalidName{Name: req.Name})
		return body
	}
	body.Res = res
	return body
}

// UpdateOptions checks every change before storing any: a key outside the
// catalogue fails with InvalidName, a value of the wrong type or out of range
// with InvalidArgument. An unset value resets the option to its default.
func (m *OptionManager) UpdateOptions(req *types.UpdateOptions) soap.HasFault {
	body := &methods.UpdateOptionsBody{}
	values := make([]types.OptionValue, 0, len(req.ChangedValue))
	for _, c := range req.ChangedValue {
		v := *c.GetOptionValue()
		t, ok := m.defs[v.Key]
		if !ok {
			body.Fault_ = simulator.Fault("A specified parameter was not correct: unsupported option "+v.Key, &types.InvalidName{Name: v.Key})
			return body
		}
		if v.Value == nil {
			v.Value = defaultOf(t)
		}
		if reason := checkValue(t, v.Value); reason != "" {
			body.Fault_ = simulator.Fault(fmt.Sprintf("A specified parameter was not correct: %s: %s", v.Key, reason), &types.InvalidArgument{InvalidProperty: v.Key})
			return body
		}
		values = append(values, v)
	}
	for _, v := range values {
		m.find(v.Key).Value = v.Value
	}
	m.mirror()
	body.Res = &types.UpdateOptionsResponse{}
	return body
}
