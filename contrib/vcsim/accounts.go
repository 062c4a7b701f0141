package main

import (
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// AccountManager is one host's HostLocalAccountManager: it keeps each local user's
// password, so that UpdateUser really changes it and ChangePassword (which needs the
// current one, as on ESXi) tells a client whether a password was set. The stock
// simulator has one manager for every host and UpdateUser does nothing.
type AccountManager struct {
	mo.HostLocalAccountManager
	mu        sync.Mutex
	passwords map[string]string // user -> password; root exists from the start
}

func newAccountManager() *AccountManager {
	return &AccountManager{passwords: map[string]string{"root": ""}}
}

func (a *AccountManager) CreateUser(req *types.CreateUser) soap.HasFault {
	spec := req.User.GetHostAccountSpec()
	body := &methods.CreateUserBody{}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.passwords[spec.Id]; ok {
		body.Fault_ = simulator.Fault("user "+spec.Id+" exists", &types.AlreadyExists{Name: spec.Id})
		return body
	}
	a.passwords[spec.Id] = spec.Password
	body.Res = &types.CreateUserResponse{}
	return body
}

func (a *AccountManager) UpdateUser(req *types.UpdateUser) soap.HasFault {
	spec := req.User.GetHostAccountSpec()
	body := &methods.UpdateUserBody{}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.passwords[spec.Id]; !ok {
		body.Fault_ = simulator.Fault("no user "+spec.Id, &types.UserNotFound{Principal: spec.Id})
		return body
	}
	if spec.Password != "" { // an unset password leaves it as it is, as on ESXi
		a.passwords[spec.Id] = spec.Password
	}
	body.Res = &types.UpdateUserResponse{}
	return body
}

func (a *AccountManager) RemoveUser(req *types.RemoveUser) soap.HasFault {
	body := &methods.RemoveUserBody{}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.passwords[req.UserName]; !ok || req.UserName == "root" {
		body.Fault_ = simulator.Fault("cannot remove "+req.UserName, &types.UserNotFound{Principal: req.UserName})
		return body
	}
	delete(a.passwords, req.UserName)
	body.Res = &types.RemoveUserResponse{}
	return body
}

// ChangePassword succeeds only with the user's current password (InvalidLogin otherwise).
func (a *AccountManager) ChangePassword(req *types.ChangePassword) soap.HasFault {
	body := &methods.ChangePasswordBody{}
	a.mu.Lock()
	defer a.mu.Unlock()
	current, ok := a.passwords[req.User]
	if !ok || current != req.OldPassword {
		body.Fault_ = simulator.Fault("wrong user or password", &types.InvalidLogin{})
		return body
	}
	a.passwords[req.User] = req.NewPassword
	body.Res = &types.ChangePasswordResponse{}
	return body
}
