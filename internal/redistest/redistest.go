// Package redistest starts real redis-server processes on free loopback
// ports for tests: a single server, a Redis Cluster of three masters, or a
// master and a replica watched by a Sentinel.
// It needs redis-server and redis-cli on PATH (Debian package
// redis-server; `make test` installs it when missing). Without them the
// tests fail rather than skip, so a CI run can never pass without Redis.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wagate/caddy-webhook/internal/testutil"
)

// Server is one redis-server process.
type Server struct {
	Addr string
	port int
	dir  string
	conf string // config file contents, for a Sentinel
	args []string
	cmd  *exec.Cmd
}

func binaries() error {
	for _, b := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("%s not found: install Debian's redis-server package (make test does it with apt-get)", b)
		}
	}
	return nil
}

// Start starts a redis-server on a free loopback port. extra arguments are
// passed on (for example "--cluster-enabled", "yes").
func Start(extra ...string) (*Server, error) { return startConf("", extra...) }

// startConf starts a server on a free port; conf, when not empty, is
// written to a config file given as the first argument.
func startConf(conf string, extra ...string) (*Server, error) {
	if err := binaries(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		port := testutil.FreePort()
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), port: port, dir: dir, conf: conf, args: extra}
		if last = s.start(); last == nil {
			return s, nil
		}
	}
	os.RemoveAll(dir)
	return nil, last
}

func (s *Server) start() error {
	var args []string
	if s.conf != "" {
		f := filepath.Join(s.dir, "redis.conf")
		if err := os.WriteFile(f, []byte(s.conf), 0o600); err != nil {
			return err
		}
		args = append(args, f)
	}
	args = append(append(args,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
		"--logfile", filepath.Join(s.dir, "redis.log")),
		s.args...)
	s.cmd = exec.Command("redis-server", args...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := s.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { s.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			return fmt.Errorf("redis-server on port %d exited: %s", s.port, strings.TrimSpace(string(log)))
		default:
		}
		if reply, err := s.Do("PING"); err == nil && reply == "PONG" {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.cmd.Process.Kill()
	return fmt.Errorf("redis-server on port %d did not answer PING", s.port)
}

// Do runs one command with redis-cli and returns its reply, trimmed.
func (s *Server) Do(args ...string) (string, error) {
	out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(s.port)}, args...)...).CombinedOutput()
	reply := strings.TrimSpace(string(out))
	if err != nil {
		return reply, fmt.Errorf("redis-cli %v: %v: %s", args, err, reply)
	}
	if strings.HasPrefix(reply, "Could not connect") || strings.HasPrefix(reply, "ERR") {
		return reply, errors.New(reply)
	}
	return reply, nil
}

// Stop stops the server and waits for it to exit. The data is gone.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGCONT) // in case it is paused
		s.cmd.Process.Kill()
		for i := 0; i < 200 && s.alive(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (s *Server) alive() bool {
	c, err := net.DialTimeout("tcp", s.Addr, 50*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// Pid returns the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Restart starts the server again on the same port, after Stop.
func (s *Server) Restart() error { return s.start() }

// Pause stops the process with SIGSTOP: connections stay open but nothing
// answers, as with a Redis stalled by a slow command or a swapping host.
func (s *Server) Pause() { s.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.cmd.Process.Signal(syscall.SIGCONT) }

// Close stops the server and removes its files.
func (s *Server) Close() {
	s.Stop()
	os.RemoveAll(s.dir)
}

// Cluster is a Redis Cluster of three masters on loopback.
type Cluster struct {
	Nodes []*Server
}

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.Addr)
	}
	return a
}

// StartCluster starts three cluster-enabled servers, joins them with
// `redis-cli --cluster create`, and waits until the cluster is ok.
func StartCluster() (*Cluster, error) {
	c := &Cluster{}
	for i := 0; i < 3; i++ {
		n, err := Start("--cluster-enabled", "yes", "--cluster-config-file", "nodes-"+strconv.Itoa(i)+".conf",
			"--cluster-node-timeout", "2000")
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.Nodes {
		for {
			info, _ := n.Do("CLUSTER", "INFO")
			if clusterOK(info) {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				return nil, fmt.Errorf("cluster not ok after 20s: %s", info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c, nil
}

func clusterOK(info string) bool {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "cluster_state:ok" {
			return true
		}
	}
	return false
}

// Close stops every node.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		n.Close()
	}
}

// Sentinel is a master and one replica, watched by one Sentinel (quorum 1).
type Sentinel struct {
	Name                      string // the master's name, for master_name
	Master, Replica, Sentinel *Server
}

// StartSentinel starts a master, a replica of it and a Sentinel that
// monitors the master under name.
func StartSentinel(name string) (*Sentinel, error) {
	s := &Sentinel{Name: name}
	var err error
	if s.Master, err = Start(); err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(s.Master.Addr)
	if s.Replica, err = Start("--replicaof", host, port); err != nil {
		s.Close()
		return nil, err
	}
	conf := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s 1\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 5000\n", name, host, port)
	if s.Sentinel, err = startConf(conf, "--sentinel"); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// MasterAddr returns the master's address as the Sentinel reports it.
func (s *Sentinel) MasterAddr() (string, error) {
	reply, err := s.Sentinel.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.Name)
	if err != nil {
		return "", err
	}
	f := strings.Fields(reply)
	if len(f) != 2 {
		return "", fmt.Errorf("sentinel: master address %q", reply)
	}
	return net.JoinHostPort(f[0], f[1]), nil
}

// Failover makes the Sentinel promote the replica (SENTINEL FAILOVER) and
// waits until it reports the replica as master and the old master has
// become its replica; Master and Replica swap. Until then the old master
// still takes writes, which its resync then drops: Redis's asynchronous
// replication. The Sentinel learns of the replica from the master's INFO,
// every 10 s, so this can take that long.
func (s *Sentinel) Failover() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		reply, err := s.Sentinel.Do("SENTINEL", "FAILOVER", s.Name)
		if err == nil && reply == "OK" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sentinel failover: %q %v", reply, err)
		}
		time.Sleep(200 * time.Millisecond) // NOGOODSLAVE until the replica is known
	}
	for {
		addr, _ := s.MasterAddr()
		role, _ := s.Master.Do("ROLE")
		if addr == s.Replica.Addr && strings.HasPrefix(role, "slave") {
			s.Master, s.Replica = s.Replica, s.Master
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sentinel failover: not done in 30s: the Sentinel names %s as master, the old master's role is %q", addr, role)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close stops the three servers.
func (s *Sentinel) Close() {
	for _, n := range []*Server{s.Sentinel, s.Replica, s.Master} {
		if n != nil {
			n.Close()
		}
	}
}
