package proctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Cluster is a private PostgreSQL server created with initdb in a temporary folder, on its
// own loopback port. Tests may stop, kill and start it; the shared server is never touched.
type Cluster struct {
	t    testing.TB
	dir  string
	bin  string
	Port int
	cred *syscall.Credential
}

// NewCluster creates and starts a private cluster with a database named test. Without
// initdb on the machine the test is skipped (under CI it fails).
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("private PostgreSQL cluster: %v", err)
		}
		t.Skipf("private PostgreSQL cluster: %v", err)
	}
	dir, err := os.MkdirTemp("", "sesame-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, dir: dir, bin: bin}
	t.Cleanup(func() {
		c.run("pg_ctl", "-D", c.data(), "stop", "-m", "immediate", "-w")
		os.RemoveAll(dir)
	})
	// PostgreSQL refuses to run as root: run it as the postgres user where we are root.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and there is no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	c.Port, _ = strconv.Atoi(port)
	if out, err := c.run("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.Start()
	if out, err := c.run("createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "test"); err != nil {
		t.Fatalf("createdb: %v\n%s", err, out)
	}
	return c
}

func pgBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
		return filepath.Dir(p), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", fmt.Errorf("initdb not found")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) run(name string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// URL is the connection URL of the cluster's test database.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable", c.Port)
}

// Start starts the cluster and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", c.Port, c.dir)
	if out, err := c.run("pg_ctl", "-D", c.data(), "-o", opts, "-l", filepath.Join(c.dir, "log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		c.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.Port), time.Second)
		if err == nil {
			conn.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("cluster on port %d did not accept connections", c.Port)
}

// Stop shuts the cluster down (fast mode: clients are disconnected, data is flushed).
func (c *Cluster) Stop() {
	c.t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.data(), "stop", "-m", "fast", "-w"); err != nil {
		c.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Kill stops the cluster as a crash would (immediate mode: no checkpoint, recovery on start).
func (c *Cluster) Kill() {
	c.t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.data(), "stop", "-m", "immediate", "-w"); err != nil {
		c.t.Fatalf("pg_ctl stop -m immediate: %v\n%s", err, out)
	}
}
