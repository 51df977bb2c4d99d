package brokertest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// rabbitServer is the Debian package's start script, run without the
// /usr/sbin wrapper (which switches to the rabbitmq user).
const rabbitServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// RabbitBootTimeout bounds a RabbitMQ node's boot (usually 5-15 s).
const RabbitBootTimeout = 60 * time.Second

// Rabbit is a RabbitMQ node the test owns: its own node name, ports,
// mnesia and log directories, Erlang cookie (in a temporary HOME) and epmd
// port, and no plugins. Restart keeps the data and the ports.
type Rabbit struct {
	// URL is the node's AMQP URL (amqp://guest:guest@127.0.0.1:<port>/).
	URL string

	dir, node                    string
	amqpPort, distPort, epmdPort int
	cmd                          *exec.Cmd
	exited                       chan struct{}
}

// RabbitPath returns the rabbitmq-server start script, or skips t (fails
// it when CI=true) when RabbitMQ is not installed.
func RabbitPath(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(rabbitServer); err == nil {
		return rabbitServer
	}
	if p, err := exec.LookPath("rabbitmq-server"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("rabbitmq-server is not installed (%s missing); scripts/test.sh installs it", rabbitServer)
	}
	t.Skipf("rabbitmq-server is not installed (%s missing); scripts/test.sh installs it", rabbitServer)
	return ""
}

// StartRabbit boots a RabbitMQ node and waits until an AMQP dial works.
// t.Cleanup stops the node (by process group) and its epmd.
func StartRabbit(t testing.TB) *Rabbit {
	t.Helper()
	RabbitPath(t)
	dir := t.TempDir()
	r := &Rabbit{dir: dir, node: fmt.Sprintf("trellis-%d@localhost", time.Now().UnixNano()%1e9)}
	r.amqpPort, r.distPort, r.epmdPort = FreePort(t), FreePort(t), FreePort(t)
	r.URL = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", r.amqpPort)
	for name, body := range map[string]string{
		"enabled_plugins": "[].\n",
		"rabbitmq.conf":   "loopback_users = none\nlisteners.tcp.default = 127.0.0.1:" + strconv.Itoa(r.amqpPort) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.stop(t)
		// epmd daemonizes out of the node's process group: stop the one on
		// this node's private port.
		kill := exec.Command("epmd", "-kill")
		kill.Env = append(os.Environ(), "ERL_EPMD_PORT="+strconv.Itoa(r.epmdPort))
		_ = kill.Run()
	})
	r.start(t)
	return r
}

// Restart stops the node (SIGTERM, waiting for it to exit) and boots it
// again on the same ports with the same data.
func (r *Rabbit) Restart(t testing.TB) {
	t.Helper()
	r.stop(t)
	r.start(t)
}

// Stop stops the node; Start boots it again. Between the two, dials fail.
func (r *Rabbit) Stop(t testing.TB) { t.Helper(); r.stop(t) }

// Start boots a stopped node again.
func (r *Rabbit) Start(t testing.TB) { t.Helper(); r.start(t) }

func (r *Rabbit) start(t testing.TB) {
	t.Helper()
	d := r.dir
	cmd := exec.Command(RabbitPath(t))
	cmd.Dir = d
	cmd.Env = append(os.Environ(),
		"HOME="+filepath.Join(d, "home"),
		"RABBITMQ_NODENAME="+r.node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(r.amqpPort),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(r.distPort),
		"ERL_EPMD_PORT="+strconv.Itoa(r.epmdPort),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(d, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(d, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(d, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(d, "advanced.config"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(d, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(d, "enabled_plugins"),
		"RABBITMQ_PLUGINS_EXPAND_DIR="+filepath.Join(d, "plugins-expand"),
		"RABBITMQ_PID_FILE="+filepath.Join(d, "rabbit.pid"),
	)
	out, err := os.OpenFile(filepath.Join(d, "server.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start rabbitmq-server: %v", err)
	}
	r.cmd, r.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) { _ = cmd.Wait(); out.Close(); close(exited) }(r.exited)

	deadline := time.Now().Add(RabbitBootTimeout)
	for {
		c, err := amqp.DialConfig(r.URL, amqp.Config{Dial: amqp.DefaultDial(time.Second)})
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-r.exited:
			b, _ := os.ReadFile(filepath.Join(d, "server.out"))
			t.Fatalf("rabbitmq-server exited during boot: %s", tail(b))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(d, "server.out"))
			t.Fatalf("rabbitmq-server did not accept AMQP on %s within %v (last: %v): %s", r.URL, RabbitBootTimeout, err, tail(b))
		}
	}
}

func (r *Rabbit) stop(t testing.TB) {
	t.Helper()
	if r.cmd == nil {
		return
	}
	pgid := r.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-r.exited
	}
	r.cmd = nil
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// FreePort returns a loopback TCP port that was free a moment ago (for
// servers that must keep their port across a restart).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// DialRabbit opens an AMQP connection to r, closed in t.Cleanup.
func DialRabbit(t testing.TB, url string) *amqp.Connection {
	t.Helper()
	c, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
