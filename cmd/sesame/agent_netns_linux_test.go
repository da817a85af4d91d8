package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// netNS is a network namespace made for one test, joined to the host by a veth pair on a
// private /30: the host end is HostIP, the namespace's end NSIP. Inside it, loopback is
// its own: nothing on the host reaches a listener on the namespace's 127.0.0.1.
type netNS struct {
	Name, HostIP, NSIP string
}

// newNetNS creates the namespace, or returns the reason it cannot (not root, no ip tool,
// no namespace support) so that the test can fall back.
func newNetNS(t *testing.T) (*netNS, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("no ip command: %w", err)
	}
	removeStaleNetNS()
	id := rand.IntN(1 << 16)
	octet := 1 + rand.IntN(250)
	ns := &netNS{Name: fmt.Sprintf("sesame-agt-%d-%d", os.Getpid(), id),
		HostIP: fmt.Sprintf("10.254.%d.1", octet), NSIP: fmt.Sprintf("10.254.%d.2", octet)}
	host, peer := fmt.Sprintf("sah%x", id), fmt.Sprintf("san%x", id)
	run := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run("netns", "add", ns.Name); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", host).Run()
		_ = exec.Command("ip", "netns", "del", ns.Name).Run()
	})
	for _, step := range [][]string{
		{"link", "add", host, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", ns.Name},
		{"addr", "add", ns.HostIP + "/30", "dev", host},
		{"link", "set", host, "up"},
		{"netns", "exec", ns.Name, "ip", "addr", "add", ns.NSIP + "/30", "dev", peer},
		{"netns", "exec", ns.Name, "ip", "link", "set", peer, "up"},
		{"netns", "exec", ns.Name, "ip", "link", "set", "lo", "up"},
	} {
		if err := run(step...); err != nil {
			return nil, err
		}
	}
	return ns, nil
}

// removeStaleNetNS deletes the namespaces (and so their veth pairs) that an earlier test
// process of this file made and could not clean up (it was killed or timed out): the
// name carries the creating process's ID.
func removeStaleNetNS() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, "sesame-agt-")
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue // its process still runs
		}
		_ = exec.Command("ip", "netns", "del", name).Run()
	}
}

// Listen opens a TCP listener inside the namespace: a thread of this process joins it just
// long enough to create the socket, which stays in the namespace, and then exits (it is
// never unlocked, so Go does not reuse it).
func (n *netNS) Listen(addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + n.Name)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// Wrap is the command prefix that runs a process inside the namespace.
func (n *netNS) Wrap() []string { return []string{"ip", "netns", "exec", n.Name} }
