package redisproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Binary is the program looked up on PATH.
const Binary = "redis-server"

// StartTimeout bounds how long Launch waits for the server to answer.
const StartTimeout = 10 * time.Second

// ErrNotFound is returned (wrapped) when redis-server is not on PATH.
var ErrNotFound = errors.New("redis-server not found on PATH (Debian: apt-get install -y redis-server)")

// errAddrInUse marks a server that exited because its port was taken.
var errAddrInUse = errors.New("address already in use")

// LookPath returns the path of redis-server, or an error wrapping ErrNotFound.
func LookPath() (string, error) {
	p, err := exec.LookPath(Binary)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return p, nil
}

// Available reports whether redis-server is on PATH.
func Available() bool {
	_, err := LookPath()
	return err == nil
}

// Process is one running (or exited) redis-server.
type Process struct {
	bin  string
	port int
	dir  string
	conf string   // configuration file given before the arguments, or ""
	args []string // the caller's extra arguments
	pid  int
	os   *os.Process
	log  *tail

	done    chan struct{}
	waitErr error // set before done is closed

	closeOnce sync.Once
	closeErr  error
}

// Launch starts redis-server on a free 127.0.0.1 port with its working
// directory (dump.rdb, appendonly files) in dir, which must exist. args are
// appended to the defaults (`--save "" --appendonly no --dbfilename dump.rdb`)
// and so override them. ctx bounds only the start-up, together with
// StartTimeout; the server runs until Shutdown, Kill or Close.
func Launch(ctx context.Context, dir string, args ...string) (*Process, error) {
	return launch(ctx, 0, dir, "", args)
}

// LaunchConfig is Launch with a configuration file: `redis-server conf
// --port N ... args`. Sentinel needs one (it rewrites it with its state):
// LaunchConfig(ctx, dir, "sentinel.conf", "--sentinel") starts a sentinel.
// A relative conf is relative to dir.
func LaunchConfig(ctx context.Context, dir, conf string, args ...string) (*Process, error) {
	if conf == "" {
		return nil, errors.New("redisproc: empty configuration file name")
	}
	return launch(ctx, 0, dir, conf, args)
}

// LaunchPort is Launch on a given port. While the port is taken it retries
// until ctx or StartTimeout ends.
func LaunchPort(ctx context.Context, port int, dir string, args ...string) (*Process, error) {
	if port <= 0 {
		return nil, fmt.Errorf("redisproc: invalid port %d", port)
	}
	return launch(ctx, port, dir, "", args)
}

func launch(ctx context.Context, port int, dir, conf string, args []string) (*Process, error) {
	bin, err := LookPath()
	if err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, errors.New("redisproc: empty directory")
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("redisproc: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("redisproc: %s is not a directory", dir)
	}
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		p := port
		if p == 0 {
			if p, err = freePort(); err != nil {
				return nil, err
			}
		}
		proc, err := start(bin, p, dir, conf, args)
		if err != nil {
			return nil, err
		}
		err = proc.waitReady(ctx)
		if err == nil {
			return proc, nil
		}
		_ = proc.Kill()
		if !errors.Is(err, errAddrInUse) || ctx.Err() != nil {
			return nil, err
		}
		if port == 0 {
			if attempt >= 20 {
				return nil, err
			}
			continue // another free port
		}
		select { // the fixed port: wait for it to be released
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process may
// take it before redis-server binds it; launch then retries.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redisproc: finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func start(bin string, port int, dir, conf string, args []string) (*Process, error) {
	var full []string
	if conf != "" {
		full = append(full, conf) // redis-server wants the file first
	}
	full = append(full,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--daemonize", "no",
		"--logfile", "",
		"--save", "",
		"--appendonly", "no",
		"--dbfilename", "dump.rdb",
		"--dir", dir,
	)
	full = append(full, args...)
	p := &Process{
		bin:  bin,
		port: port,
		dir:  dir,
		conf: conf,
		args: append([]string(nil), args...),
		log:  &tail{max: 64 << 10},
		done: make(chan struct{}),
	}
	cmd := exec.Command(bin, full...)
	cmd.Dir = dir
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	// A background save child inherits the output pipe; do not let it hold
	// up Wait once the server itself is gone.
	cmd.WaitDelay = 2 * time.Second
	setDeathSignal(cmd)

	started := make(chan error, 1)
	go func() {
		// Keep this goroutine on its own OS thread for the server's life:
		// the death signal fires when the starting thread exits.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("redisproc: starting %s: %w", bin, err)
	}
	p.os = cmd.Process
	p.pid = cmd.Process.Pid
	return p, nil
}

// waitReady polls until this process answers INFO with its own pid.
func (p *Process) waitReady(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var last error
	exited := func() error {
		out := p.log.String()
		if strings.Contains(out, "Address already in use") {
			return fmt.Errorf("redisproc: port %d: %w", p.port, errAddrInUse)
		}
		return fmt.Errorf("redisproc: redis-server on port %d exited during start-up (%v); output:\n%s", p.port, p.waitErr, lastLines(out, 20))
	}
	for {
		select {
		case <-p.done:
			return exited()
		case <-ctx.Done():
			select {
			case <-p.done:
				return exited()
			case <-time.After(100 * time.Millisecond): // a bind failure shows up at once
			}
			if strings.Contains(p.log.String(), "Address already in use") {
				return fmt.Errorf("redisproc: port %d: %w", p.port, errAddrInUse)
			}
			return fmt.Errorf("redisproc: redis-server on port %d not ready: %w (last: %v); output:\n%s", p.port, ctx.Err(), last, lastLines(p.log.String(), 20))
		case <-tick.C:
		}
		pid, err := infoPid(ctx, p.Addr())
		if err != nil {
			last = err
			continue
		}
		if pid != p.pid {
			// Another server holds the port; ours will exit with
			// "Address already in use".
			last = fmt.Errorf("port %d answered by pid %d, not %d", p.port, pid, p.pid)
			continue
		}
		return nil
	}
}

// infoPid sends INFO server and returns process_id.
func infoPid(ctx context.Context, addr string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	if _, err := io.WriteString(conn, "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return 0, fmt.Errorf("INFO: %s", line) // e.g. -LOADING
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 {
		return 0, fmt.Errorf("INFO: bad reply %q", line)
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO: no process_id")
}

// Addr is "127.0.0.1:port".
func (p *Process) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// Port is the TCP port.
func (p *Process) Port() int { return p.port }

// Dir is the server's working directory.
func (p *Process) Dir() string { return p.dir }

// Pid is the server's process id.
func (p *Process) Pid() int { return p.pid }

// Conf is the configuration file given to LaunchConfig, or "".
func (p *Process) Conf() string { return p.conf }

// Args are the extra arguments given to Launch.
func (p *Process) Args() []string { return append([]string(nil), p.args...) }

// Done is closed when the server has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the server has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log returns the server's recent output (at most 64 KiB).
func (p *Process) Log() string { return p.log.String() }

// Shutdown sends SHUTDOWN SAVE (save=true: write dump.rdb even though no
// save points are configured) or SHUTDOWN NOSAVE and waits for the exit.
func (p *Process) Shutdown(ctx context.Context, save bool) error {
	if p.Exited() {
		return nil
	}
	mode := "NOSAVE"
	if save {
		mode = "SAVE"
	}
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", p.Addr())
	if err != nil {
		return fmt.Errorf("redisproc: shutdown: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(conn, "*2\r\n$8\r\nSHUTDOWN\r\n$%d\r\n%s\r\n", len(mode), mode); err != nil {
		return fmt.Errorf("redisproc: shutdown: %w", err)
	}
	// On success the server closes the connection without a reply; a
	// reply is an error (such as a failed save).
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err == nil {
		return fmt.Errorf("redisproc: SHUTDOWN %s: %s", mode, strings.TrimSpace(line))
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("redisproc: waiting for redis-server to exit after SHUTDOWN %s: %w", mode, ctx.Err())
	}
}

// Kill sends SIGKILL and waits for the exit. Data since the last save is lost.
func (p *Process) Kill() error {
	if p.Exited() {
		return nil
	}
	if err := p.os.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("redisproc: kill %d: %w", p.pid, err)
	}
	<-p.done
	return nil
}

// Close stops the server without saving (SHUTDOWN NOSAVE, SIGKILL if that
// fails or takes over 10 s). It is safe to call more than once.
func (p *Process) Close() error {
	p.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx, false); err != nil {
			p.closeErr = p.Kill()
		}
	})
	return p.closeErr
}

// Relaunch starts a new server on the same port and directory with the same
// arguments (so it loads the dump.rdb a SHUTDOWN SAVE left). The old one must
// have exited.
func (p *Process) Relaunch(ctx context.Context) (*Process, error) {
	if !p.Exited() {
		return nil, fmt.Errorf("redisproc: redis-server pid %d on port %d is still running", p.pid, p.port)
	}
	return launch(ctx, p.port, p.dir, p.conf, p.args)
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
