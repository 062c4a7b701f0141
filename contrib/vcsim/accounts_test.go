package main

import (
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

func TestAccountManagerKeepsEachHostsPasswords(t *testing.T) {
	ctx, c := extendedServer(t)
	var managers []types.ManagedObjectReference
	for _, e := range simulator.Map.All("HostSystem")[:2] {
		ref := e.(*simulator.HostSystem).ConfigManager.AccountManager
		if _, ok := simulator.Map.Get(*ref).(*AccountManager); !ok {
			t.Fatalf("host %v has no extended account manager", e.Reference())
		}
		managers = append(managers, *ref)
	}
	if managers[0] == managers[1] {
		t.Fatal("hosts share an account manager")
	}
	update := &types.UpdateUser{This: managers[0], User: &types.HostAccountSpec{Id: "root", Password: "s3cret"}}
	if _, err := methods.UpdateUser(ctx, c.Client, update); err != nil {
		t.Fatal(err)
	}
	change := func(m types.ManagedObjectReference, old string) error {
		_, err := methods.ChangePassword(ctx, c.Client, &types.ChangePassword{This: m, User: "root", OldPassword: old, NewPassword: old})
		return err
	}
	if err := change(managers[0], "s3cret"); err != nil {
		t.Fatalf("the password set by UpdateUser: %v", err)
	}
	if change(managers[0], "") == nil || change(managers[1], "s3cret") == nil {
		t.Fatal("ChangePassword accepted a wrong current password")
	}
	nobody := &types.UpdateUser{This: managers[0], User: &types.HostAccountSpec{Id: "nobody", Password: "x"}}
	if _, err := methods.UpdateUser(ctx, c.Client, nobody); err == nil {
		t.Fatal("UpdateUser of an unknown user succeeded")
	}
}
