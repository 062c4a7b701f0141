package main

import (
	"encoding/xml"
	"fmt"
	"net/http"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// MoveInto answers ClusterComputeResource.MoveInto_Task, which the simulator lacks: hosts
// moved by hand from one cluster into another, as an administrator does in vCenter. The
// stock cluster type cannot gain a method, and a wrapper type would break the simulator's
// own type switches, so the call is answered here, in front of the SOAP endpoint: the hosts
// change clusters in the registry, their `parent` change is reported to property collectors
// (Map.Update), and the answer is a completed Task as for any other `_Task` method.
type MoveInto struct {
	next http.Handler
}

// NewMoveInto returns next with MoveInto_Task answered.
func NewMoveInto(next http.Handler) *MoveInto {
	return &MoveInto{next: next}
}

type moveRequest struct {
	Body struct {
		Move struct {
			This types.ManagedObjectReference   `xml:"_this"`
			Host []types.ManagedObjectReference `xml:"host"`
		} `xml:"MoveInto_Task"`
	} `xml:"Body"`
}

// entity stands for the task's entity when `_this` names no cluster.
type entity types.ManagedObjectReference

func (e entity) Reference() types.ManagedObjectReference { return types.ManagedObjectReference(e) }

func (m *MoveInto) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		m.next.ServeHTTP(w, r)
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if SOAPMethod(body) != "MoveInto_Task" {
		m.next.ServeHTTP(w, r)
		return
	}
	var req moveRequest
	if err := xml.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	task := moveHosts(req.Body.Move.This, req.Body.Move.Host)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><MoveInto_TaskResponse xmlns="urn:vim25"><returnval type="Task">%s</returnval></MoveInto_TaskResponse></soapenv:Body></soapenv:Envelope>`,
		task.Value)
}

// moveHosts runs the move as a task and returns the task's reference.
func moveHosts(this types.ManagedObjectReference, hosts []types.ManagedObjectReference) types.ManagedObjectReference {
	cluster, ok := simulator.Map.Get(this).(*simulator.ClusterComputeResource)
	if !ok {
		return simulator.CreateTask(entity(this), "moveInto", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
			return nil, &types.ManagedObjectNotFound{Obj: this}
		}).Run()
	}
	return simulator.CreateTask(cluster, "moveInto", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		for _, ref := range hosts {
			host, ok := simulator.Map.Get(ref).(*simulator.HostSystem)
			if !ok {
				return nil, &types.ManagedObjectNotFound{Obj: ref}
			}
			from, ok := simulator.Map.Get(*host.Parent).(*simulator.ClusterComputeResource)
			if !ok {
				return nil, &types.NotSupported{} // standalone hosts: not modelled
			}
			if from == cluster {
				continue
			}
			simulator.Map.RemoveReference(from, &from.Host, ref)
			simulator.Map.AddReference(cluster, &cluster.Host, ref)
			simulator.Map.Update(host, []types.PropertyChange{{Name: "parent", Val: cluster.Self}})
		}
		return nil, nil
	}).Run()
}
