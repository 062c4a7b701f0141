package main

import (
	"testing"

	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func testOptions(t *testing.T) (*mo.HostSystem, *OptionManager) {
	t.Helper()
	host := &mo.HostSystem{Config: clone(&esx.HostConfigInfo)}
	host.Self = types.ManagedObjectReference{Type: "HostSystem", Value: "host-options"}
	return host, newOptionManager(host)
}

func query(m *OptionManager, name string) ([]types.BaseOptionValue, types.BaseMethodFault) {
	body := m.QueryOptions(&types.QueryOptions{Name: name}).(*methods.QueryOptionsBody)
	if body.Fault_ != nil {
		return nil, body.Fault_.Detail.Fault.(types.BaseMethodFault)
	}
	return body.Res.Returnval, nil
}

func update(m *OptionManager, values ...types.OptionValue) types.BaseMethodFault {
	var changed []types.BaseOptionValue
	for i := range values {
		changed = append(changed, &values[i])
	}
	body := m.UpdateOptions(&types.UpdateOptions{ChangedValue: changed}).(*methods.UpdateOptionsBody)
	if body.Fault_ != nil {
		return body.Fault_.Detail.Fault.(types.BaseMethodFault)
	}
	return nil
}

func value(t *testing.T, m *OptionManager, key string) types.AnyType {
	t.Helper()
	got, fault := query(m, key)
	if fault != nil || len(got) != 1 {
		t.Fatalf("QueryOptions(%s): %v %v", key, got, fault)
	}
	return got[0].GetOptionValue().Value
}

func TestCatalogueIsPublishedWithDefaults(t *testing.T) {
	host, m := testOptions(t)
	types_ := map[string]types.BaseOptionType{}
	for _, d := range m.SupportedOption {
		types_[d.Key] = d.OptionType
	}
	if len(types_) != len(catalogue) || len(m.Setting) != len(catalogue) || len(host.Config.Option) != len(catalogue) {
		t.Fatalf("%d defs, %d settings, %d in config.option for %d options", len(types_), len(m.Setting), len(host.Config.Option), len(catalogue))
	}
	if o, ok := types_["Net.TcpipHeapSize"].(*types.LongOption); !ok || o.Min != 0 || o.Max != 32 || o.DefaultValue != 0 {
		t.Fatalf("Net.TcpipHeapSize: %#v", types_["Net.TcpipHeapSize"])
	}
	if _, ok := types_["Security.AccountLockFailures"].(*types.IntOption); !ok {
		t.Fatalf("Security.AccountLockFailures: %#v", types_["Security.AccountLockFailures"])
	}
	if _, ok := types_["Syslog.global.logHost"].(*types.StringOption); !ok {
		t.Fatal("Syslog.global.logHost is not a StringOption")
	}
	if _, ok := types_["Config.HostAgent.plugins.solo.enableMob"].(*types.BoolOption); !ok {
		t.Fatal("enableMob is not a BoolOption")
	}
	for key, want := range map[string]types.AnyType{
		"Net.TcpipHeapMax": int64(512), "Security.AccountLockFailures": int32(5), "Syslog.global.logHost": "",
		"Syslog.global.logDir": "[] /scratch/log", "Config.HostAgent.log.level": "info",
		"Config.HostAgent.plugins.solo.enableMob": false,
	} {
		if got := value(t, m, key); got != want {
			t.Errorf("%s = %#v, want %#v", key, got, want)
		}
	}
	if all, _ := query(m, ""); len(all) != len(catalogue) {
		t.Fatalf("QueryOptions(\"\") gave %d options", len(all))
	}
	if sub, _ := query(m, "Net."); len(sub) != 3 {
		t.Fatalf("QueryOptions(Net.) gave %d options", len(sub))
	}
	for _, name := range []string{"Net", "Net.TcpipHeap", "No.Such.Option"} {
		if _, fault := query(m, name); fault == nil {
			t.Errorf("QueryOptions(%s) matched", name)
		} else if _, ok := fault.(*types.InvalidName); !ok {
			t.Errorf("QueryOptions(%s): %T", name, fault)
		}
	}
	_, other := testOptions(t)
	if &other.SupportedOption[0] == &m.SupportedOption[0] || other.SupportedOption[0].OptionType == m.SupportedOption[0].OptionType {
		t.Fatal("two hosts share a catalogue")
	}
}

func TestUpdateOptionsChecksKeysTypesAndRanges(t *testing.T) {
	host, m := testOptions(t)
	cases := []struct {
		name  string
		value types.OptionValue
		fault types.BaseMethodFault
	}{
		{"unknown key", types.OptionValue{Key: "Custom.Unknown.Key", Value: "x"}, &types.InvalidName{}},
		{"empty key", types.OptionValue{Key: "", Value: "x"}, &types.InvalidName{}},
		{"xsd:int for a LongOption", types.OptionValue{Key: "Net.TcpipHeapSize", Value: int32(8)}, &types.InvalidArgument{}},
		{"above max", types.OptionValue{Key: "Net.TcpipHeapSize", Value: int64(33)}, &types.InvalidArgument{}},
		{"below min", types.OptionValue{Key: "Net.TcpipHeapMax", Value: int64(31)}, &types.InvalidArgument{}},
		{"xsd:long for an IntOption", types.OptionValue{Key: "Security.AccountLockFailures", Value: int64(3)}, &types.InvalidArgument{}},
		{"string for a BoolOption", types.OptionValue{Key: "Syslog.global.logDirUnique", Value: "true"}, &types.InvalidArgument{}},
		{"number for a StringOption", types.OptionValue{Key: "Syslog.global.logHost", Value: int64(1)}, &types.InvalidArgument{}},
	}
	for _, c := range cases {
		// A bad change next to a good one: nothing of the call is stored.
		fault := update(m, types.OptionValue{Key: "Mem.ShareForceSalting", Value: int64(0)}, c.value)
		if fault == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if got, want := typeName(fault), typeName(c.fault); got != want {
			t.Errorf("%s: %s, want %s", c.name, got, want)
		}
		if got := value(t, m, "Mem.ShareForceSalting"); got != int64(2) {
			t.Fatalf("%s: half applied: Mem.ShareForceSalting = %v", c.name, got)
		}
	}
	good := []types.OptionValue{
		{Key: "Net.TcpipHeapSize", Value: int64(32)}, {Key: "Security.AccountLockFailures", Value: int32(3)},
		{Key: "Syslog.global.logHost", Value: "udp://192.0.2.1:514"}, {Key: "Syslog.global.logDirUnique", Value: true},
	}
	if fault := update(m, good...); fault != nil {
		t.Fatalf("valid changes refused: %#v", fault)
	}
	mirrored := map[string]types.AnyType{}
	for _, o := range host.Config.Option {
		mirrored[o.GetOptionValue().Key] = o.GetOptionValue().Value
	}
	for _, g := range good {
		if value(t, m, g.Key) != g.Value || mirrored[g.Key] != g.Value {
			t.Errorf("%s not stored and mirrored: %v", g.Key, mirrored[g.Key])
		}
	}
	if fault := update(m, types.OptionValue{Key: "Net.TcpipHeapSize"}); fault != nil || value(t, m, "Net.TcpipHeapSize") != int64(0) {
		t.Fatalf("an unset value did not reset to the default: %v", fault)
	}
}

func typeName(f types.BaseMethodFault) string {
	switch f.(type) {
	case *types.InvalidName:
		return "InvalidName"
	case *types.InvalidArgument:
		return "InvalidArgument"
	}
	return "other"
}
