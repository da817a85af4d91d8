//go:build !linux

package main

import (
	"errors"
	"net"
	"testing"
)

type netNS struct{ Name, HostIP, NSIP string }

func newNetNS(*testing.T) (*netNS, error) {
	return nil, errors.New("network namespaces need Linux")
}

func (n *netNS) Listen(string) (net.Listener, error) { return nil, errors.New("no namespaces") }
func (n *netNS) Wrap() []string                      { return nil }
