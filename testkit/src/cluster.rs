//! Real processes for end-to-end tests: a `skiff server` on a loopback port and
//! the real `kubectl` pointed at it, each test in its own temporary directory.
//!
//! Every process started here sits in a guard that kills and reaps it when the
//! guard drops, also when the test panics, so no test leaves a server behind.
//! Nothing waits a fixed time: each wait polls a condition until a deadline.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The `skiff` binary under test: `$SKIFF_TEST_BIN` if set (worktrees
/// sharing one target directory overwrite each other's `target/debug/skiff`,
/// so a test run can name a private copy), else the `skiff` cargo built next
/// to the running test or benchmark (`target/<profile>/deps/..`).
pub fn skiff() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("SKIFF_TEST_BIN") {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("the test's own path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test runs from target/<profile>/deps");
        let bin = profile_dir.join(format!("skiff{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.exists(),
            "no skiff binary at {}: run the tests with cargo, which builds it",
            bin.display()
        );
        bin
    })
}
/// The real kubectl (1.32).
pub const KUBECTL: &str = "/usr/bin/kubectl";
/// How long anything may take before a test gives up: generous, because tests
/// run on two busy cores next to other test binaries.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// How often a poll looks again.
const POLL: Duration = Duration::from_millis(20);

/// A running `skiff server`: killed (SIGKILL) and reaped on drop.
pub struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    quic_addr: Option<SocketAddr>,
    data_dir: PathBuf,
    log: PathBuf,
    /// The lines the server prints after its addresses.
    stdout: Option<Mutex<Receiver<String>>>,
}

impl Server {
    /// Starts `skiff server` on `data_dir` with a free port (port 0), reads the
    /// address from its `Skiff API on https://ADDR` line and waits until
    /// `/readyz` answers `200 ok`. Its stderr (logs) goes to `<data_dir>.log`,
    /// appended across restarts.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_command("server", data_dir)
    }

    /// [`Server::start`] with another subcommand that takes the same flags
    /// (`up`).
    pub fn start_command(subcommand: &str, data_dir: &Path) -> Server {
        Server::start_with(subcommand, data_dir, &[])
    }

    /// [`Server::start_command`] with more arguments.
    pub fn start_with(subcommand: &str, data_dir: &Path, extra_args: &[&str]) -> Server {
        let log = log_path(data_dir);
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open server log");
        // `skiff up` runs a node: its peer, HTTP and metrics ports must not
        // clash with other tests'.
        let mut node_args: Vec<&str> = Vec::new();
        if subcommand == "up" && !extra_args.contains(&"--proxy-port") {
            node_args.extend(["--proxy-port", "0"]);
        }
        if subcommand == "up"
            && !extra_args.contains(&"--http-port")
            && !extra_args.contains(&"--no-http-port")
        {
            node_args.extend(["--http-port", "0"]);
        }
        let memory_dir = memory_dir(data_dir);
        if subcommand == "up" && !extra_args.contains(&"--memory-dir") {
            node_args.extend(["--memory-dir", memory_dir.to_str().unwrap_or_default()]);
        }
        if subcommand == "up"
            && !extra_args.contains(&"--metrics-port")
            && !extra_args.contains(&"--no-metrics-port")
        {
            node_args.extend(["--metrics-port", "0"]);
        }
        let child = Command::new(skiff())
            .arg(subcommand)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--api-addr", "127.0.0.1:0", "--quic-addr", "127.0.0.1:0"])
            .args(&node_args)
            .args(extra_args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawn skiff server");
        let mut server = Server {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            quic_addr: None,
            data_dir: data_dir.to_path_buf(),
            log,
            stdout: None,
        };
        let stdout = server.child_mut().stdout.take().expect("server stdout");
        let lines = line_reader(stdout);
        let deadline = Instant::now() + DEADLINE;
        server.addr = loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(addr) = line.trim().strip_prefix("Skiff API on https://") {
                        break addr.parse().unwrap_or_else(|e| {
                            panic!("server printed an address that does not parse: {line:?}: {e}")
                        });
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "skiff server did not print `Skiff API on https://...` within {DEADLINE:?}"
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = server.child_mut().wait().expect("wait for server");
                    panic!("skiff server exited ({status}) before serving")
                }
            }
        };
        server.quic_addr = loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(addr) = line.trim().strip_prefix("Node gateway on quic://") {
                        break Some(addr.parse().unwrap_or_else(|e| {
                            panic!("server printed an address that does not parse: {line:?}: {e}")
                        }));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "skiff server did not print `Skiff API on https://...` within {DEADLINE:?}"
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = server.child_mut().wait().expect("wait for server");
                    panic!("skiff server exited ({status}) before serving")
                }
            }
        };
        // The reader thread keeps draining stdout, so the server never blocks
        // on a full pipe; later lines wait for `Server::wait_for_line`.
        server.stdout = Some(Mutex::new(lines));

        let kubeconfig = std::fs::read_to_string(server.kubeconfig())
            .expect("read the kubeconfig the server wrote");
        assert!(
            kubeconfig.contains(&format!("https://{}", server.addr)),
            "the kubeconfig does not point at https://{}:\n{kubeconfig}",
            server.addr
        );
        let api = server.api();
        wait_until("the server answers /readyz with 200 ok", || {
            match api.get("/readyz") {
                Ok((200, body)) if body.trim() == "ok" => Some(()),
                _ => None,
            }
        });
        server
    }

    /// A blocking client of the API with the admin's credentials from the
    /// kubeconfig the server wrote.
    pub fn api(&self) -> ApiGet {
        ApiGet::from_kubeconfig(&self.kubeconfig(), self.addr)
    }

    /// The admin's TLS settings (CA and client certificate).
    pub fn api_tls(&self) -> Arc<rustls::ClientConfig> {
        self.api().tls
    }

    /// `GET path` on the API as the admin: (status, body).
    pub fn api_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        self.api().get(path)
    }

    /// Waits until the server prints a line on stdout that `pred` accepts
    /// (after the address lines `start` read) and returns it.
    pub fn wait_for_line(&self, description: &str, pred: impl Fn(&str) -> bool) -> String {
        let lines = self.stdout.as_ref().expect("the server's stdout is read");
        let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + DEADLINE;
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the server printed no line with {description} within {DEADLINE:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the server closed its stdout before printing {description}")
                }
            }
        }
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node gateway's address (UDP).
    pub fn quic_addr(&self) -> SocketAddr {
        self.quic_addr
            .expect("the server printed its node gateway address")
    }

    /// The kubeconfig the server wrote into its data directory.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Kills the server with SIGKILL (no chance to flush or clean up) and reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server was already killed");
        child.kill().expect("kill the server");
        child.wait().expect("wait for the killed server")
    }

    /// The server process's id, while it runs (to read its `/proc` entry).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's resident memory (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.pid().expect("the server runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("read the server's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The server's log so far (all runs on this data directory).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the server was killed")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_memory_dir(&self.data_dir);
        if std::thread::panicking() {
            eprintln!(
                "---- skiff server log ({}), last 80 lines ----",
                self.log.display()
            );
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            for line in &lines[lines.len().saturating_sub(80)..] {
                eprintln!("{line}");
            }
        }
    }
}

fn log_path(data_dir: &Path) -> PathBuf {
    let mut name = data_dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "data".into());
    name.push(".log");
    data_dir.with_file_name(name)
}

/// The real kubectl against one cluster, with its own discovery cache (kubectl
/// caches discovery per host:port, and a stale cache would mislead it).
pub struct Kubectl {
    kubeconfig: PathBuf,
    cache_dir: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Kubectl {
        Kubectl {
            kubeconfig: kubeconfig.to_path_buf(),
            cache_dir: tempfile::tempdir().expect("kubectl cache dir"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache_dir.path())
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.cache_dir.path());
        cmd
    }

    /// Runs kubectl to completion (killed if it outlives the deadline).
    pub fn run(&self, args: &[&str]) -> Outcome {
        run(self.command(args), &format!("kubectl {}", args.join(" ")))
    }

    /// Runs kubectl, asserts it succeeded, returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.status,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// Runs kubectl, asserts it failed, returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {} succeeded but should fail:\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        out.stderr
    }

    /// Starts a long-running kubectl (e.g. `get -w`) whose stdout is read line by line.
    pub fn spawn(&self, args: &[&str]) -> Background {
        Background::spawn(self.command(args), &format!("kubectl {}", args.join(" ")))
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Stdout's lines with runs of spaces collapsed (`a   b` -> `a b`), as the
    /// column widths of a kubectl table depend on the data.
    pub fn lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .map(squeeze)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

/// Collapses runs of whitespace to one space and trims.
pub fn squeeze(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs a command to completion with the deadline; a guard kills it if the
/// test panics or it runs too long.
pub fn run(mut cmd: Command, what: &str) -> Outcome {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut guard = ChildGuard(Some(child.unwrap_or_else(|e| panic!("spawn {what}: {e}"))));
    let child = guard.0.as_mut().expect("child");
    let stdout = read_all(child.stdout.take().expect("stdout"));
    let stderr = read_all(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        match child.try_wait().expect("wait for child") {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                panic!("{what} did not finish within {DEADLINE:?}")
            }
            None => std::thread::sleep(POLL),
        }
    };
    guard.0 = None;
    Outcome {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Kills and reaps a child on drop.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The memory directory (`--memory-dir`, on tmpfs) of the node started on
/// `data_dir`: one per data directory, so that a restarted node finds its
/// own, and removed when the test's process handle goes (a killed node
/// cannot empty it itself).
pub fn memory_dir(data_dir: &Path) -> PathBuf {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    PathBuf::from(format!(
        "/dev/shm/skiff-test-{}-{:016x}",
        std::process::id(),
        hasher.finish()
    ))
}

/// Removes [`memory_dir`] of `data_dir`, if there is one.
pub fn remove_memory_dir(data_dir: &Path) {
    let _ = std::fs::remove_dir_all(memory_dir(data_dir));
}

/// A long-running process whose stdout lines arrive as it prints them;
/// killed and reaped on drop.
pub struct Background {
    what: String,
    /// Held for its drop: the process ends with this value.
    _child: ChildGuard,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Background {
    fn spawn(mut cmd: Command, what: &str) -> Background {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = ChildGuard(Some(child.unwrap_or_else(|e| panic!("spawn {what}: {e}"))));
        let inner = child.0.as_mut().expect("child");
        let lines = line_reader(inner.stdout.take().expect("stdout"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = BufReader::new(inner.stderr.take().expect("stderr"));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while matches!(pipe.read_line(&mut line), Ok(n) if n > 0) {
                sink.lock().expect("stderr sink").push_str(&line);
                line.clear();
            }
        });
        Background {
            what: what.to_string(),
            _child: child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Reads lines until one satisfies `pred` (returned, whitespace squeezed)
    /// or the deadline passes (a panic listing every line seen).
    pub fn wait_for_line(&mut self, description: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let line = squeeze(&line);
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "{}: no line {description} ({}); lines so far:\n{}\nstderr:\n{}",
                    self.what,
                    if e == RecvTimeoutError::Timeout {
                        "deadline passed"
                    } else {
                        "it exited"
                    },
                    self.seen.join("\n"),
                    self.stderr.lock().expect("stderr").as_str()
                ),
            }
        }
    }

    /// Every line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }
}

/// A thread that sends each line of `pipe` and keeps draining after the
/// receiver is gone.
fn line_reader(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    rx
}

/// Polls `check` until it returns `Some` or the deadline passes (a panic).
pub fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting until {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// A blocking `GET` over a fresh plain-HTTP connection (NodePorts, Ingress,
/// metrics): (status, body). The process helpers need no runtime.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    exchange(stream, addr, path, "")
}

/// A blocking client of the API over TLS with a kubeconfig's credentials,
/// cheap to clone into threads.
#[derive(Clone)]
pub struct ApiGet {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    bearer: Option<String>,
}

impl ApiGet {
    /// The credentials and CA of `kubeconfig`'s current context, at `addr`.
    pub fn from_kubeconfig(kubeconfig: &Path, addr: SocketAddr) -> ApiGet {
        ApiGet::build(kubeconfig, addr, true, None)
    }

    /// A client that trusts `kubeconfig`'s CA but has no client certificate:
    /// anonymous, or with `token` as its bearer token.
    pub fn stranger(kubeconfig: &Path, addr: SocketAddr, token: Option<&str>) -> ApiGet {
        ApiGet::build(kubeconfig, addr, false, token)
    }

    fn build(kubeconfig: &Path, addr: SocketAddr, as_user: bool, token: Option<&str>) -> ApiGet {
        let (tls, own_token) = skiff_client::tls::from_kubeconfig(kubeconfig, as_user)
            .expect("TLS settings from the kubeconfig");
        ApiGet {
            addr,
            tls: Arc::new(tls),
            bearer: token.map(str::to_string).or(own_token),
        }
    }

    /// `GET path`: (status, body).
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let tcp = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let name = rustls_pki_types::ServerName::IpAddress(self.addr.ip().into());
        let conn =
            rustls::ClientConnection::new(self.tls.clone(), name).map_err(std::io::Error::other)?;
        let headers = match &self.bearer {
            Some(token) => format!("Authorization: Bearer {token}\r\n"),
            None => String::new(),
        };
        exchange(
            rustls::StreamOwned::new(conn, tcp),
            self.addr,
            path,
            &headers,
        )
    }
}

/// Sends `GET path` with `Connection: close` and reads the whole answer.
fn exchange(
    mut stream: impl Read + Write,
    addr: SocketAddr,
    path: &str,
    headers: &str,
) -> std::io::Result<(u16, String)> {
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // A TLS peer that closes without close_notify, after a whole answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {head:?}")))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// The `skiff` CLI against one cluster (`--kubeconfig` on every call, no
/// `$KUBECONFIG`).
pub struct Skiff {
    kubeconfig: PathBuf,
}

impl Skiff {
    pub fn new(kubeconfig: &Path) -> Skiff {
        Skiff {
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    /// `skiff ARGS --kubeconfig FILE`, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(skiff());
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env_remove("KUBECONFIG")
            .env("SKIFF_LOG", "warn");
        cmd
    }

    /// Runs skiff to completion (killed if it outlives the deadline).
    pub fn run(&self, args: &[&str]) -> Outcome {
        run(self.command(args), &format!("skiff {}", args.join(" ")))
    }

    /// Runs skiff, asserts it succeeded, returns what it printed.
    pub fn ok(&self, args: &[&str]) -> Outcome {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "skiff {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.status,
            out.stdout,
            out.stderr
        );
        out
    }

    /// Runs skiff, asserts it failed, returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "skiff {} succeeded but should fail:\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        out.stderr
    }

    /// Starts a long-running skiff (`get -w`, `logs -f`) whose stdout is read
    /// line by line; killed on drop.
    pub fn spawn(&self, args: &[&str]) -> Background {
        Background::spawn(self.command(args), &format!("skiff {}", args.join(" ")))
    }
}
