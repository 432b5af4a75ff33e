//! One JetStream-enabled `nats-server` on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::binary::nats_server_binary;
use crate::process::{Process, free_port};

/// Routing settings for a node that is part of a cluster.
#[derive(Debug, Clone)]
pub(crate) struct ClusterSpec {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) routes: Vec<u16>,
}

/// A `nats-server` with JetStream on a free loopback port and a temporary store.
///
/// Dropping it kills the process and deletes the store. [`NatsServer::stop`]
/// and [`NatsServer::restart`] keep the port and the store, for outage tests.
///
/// ```no_run
/// let server = shardline_harness::NatsServer::start();
/// println!("connect to {}", server.url());
/// ```
#[derive(Debug)]
pub struct NatsServer {
    name: String,
    port: u16,
    monitor_port: u16,
    cluster: Option<ClusterSpec>,
    store: tempfile::TempDir,
    process: Option<Process>,
}

impl NatsServer {
    /// Starts a single-node server and waits until JetStream is ready.
    pub fn start() -> Self {
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut server = Self::unstarted("n1", free_port(), None);
            match server.launch(true) {
                Ok(()) => return server,
                Err(error) => last_error = error,
            }
        }
        panic!("nats-server did not start: {last_error}")
    }

    pub(crate) fn unstarted(name: &str, port: u16, cluster: Option<ClusterSpec>) -> Self {
        let store = tempfile::Builder::new()
            .prefix("shardline-nats-")
            .tempdir()
            .expect("a temporary directory can be created");
        Self {
            name: name.to_owned(),
            port,
            monitor_port: free_port(),
            cluster,
            store,
            process: None,
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's name (`n1`, `n2`, … in a cluster).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The JetStream store directory (kept across [`NatsServer::restart`]).
    pub fn store_dir(&self) -> PathBuf {
        self.store.path().join("jetstream")
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.store.path().join("nats-server.log")
    }

    /// `true` while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(Process::is_running)
    }

    /// Kills the process with SIGKILL (a crash); the store is kept.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Stops the process with SIGTERM (a clean shutdown); the store is kept.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate(Duration::from_secs(10));
        }
    }

    /// Starts the server again on the same port with the same store, and waits
    /// until it is ready.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(error) = self.launch(self.cluster.is_none()) {
            panic!("nats-server {} did not restart: {error}", self.name);
        }
    }

    /// Connects a client.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("the harness server accepts clients")
    }

    /// Connects a client and returns its JetStream context.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
    }

    fn config(&self) -> String {
        let store = self.store_dir();
        let mut config = format!(
            "server_name: {name}\nlisten: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{monitor}\"\n\
             jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 512MB\n  max_file_store: 1TB\n}}\n",
            name = self.name,
            port = self.port,
            monitor = self.monitor_port,
            store = store.display(),
        );
        if let Some(cluster) = &self.cluster {
            let routes: Vec<String> = cluster
                .routes
                .iter()
                .map(|port| format!("\"nats-route://127.0.0.1:{port}\""))
                .collect();
            config.push_str(&format!(
                "cluster {{\n  name: {name}\n  listen: \"127.0.0.1:{port}\"\n  routes: [{routes}]\n}}\n",
                name = cluster.name,
                port = cluster.port,
                routes = routes.join(", "),
            ));
        }
        config
    }

    /// Starts the process; with `wait_for_jetstream`, also waits for `/healthz`.
    pub(crate) fn launch(&mut self, wait_for_jetstream: bool) -> Result<(), String> {
        let config_path = self.store.path().join("nats-server.conf");
        std::fs::write(&config_path, self.config()).map_err(|e| e.to_string())?;
        let mut command = Command::new(nats_server_binary());
        command.arg("-c").arg(&config_path);
        let process = Process::spawn(
            format!("nats-server {}", self.name),
            command,
            &self.log_path(),
        )
        .map_err(|e| format!("spawning {}: {e}", nats_server_binary().display()))?;
        self.process = Some(process);
        self.wait_listening(wait_for_jetstream)
    }

    pub(crate) fn wait_listening(&mut self, wait_for_jetstream: bool) -> Result<(), String> {
        let deadline = Instant::now() + crate::START_TIMEOUT;
        loop {
            if !self.is_running() {
                self.process = None;
                return Err(format!("exited early; log:\n{}", self.log_tail()));
            }
            let ready = if wait_for_jetstream {
                http_status(self.monitor_port, "/healthz") == Some(200)
            } else {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready after {:?}; log:\n{}",
                    crate::START_TIMEOUT,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the monitoring endpoint reports JetStream healthy.
    pub(crate) fn wait_healthy(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if http_status(self.monitor_port, "/healthz") == Some(200) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        tail(&self.log_path(), 30)
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A minimal HTTP/1.0 GET against the monitoring port; returns the status code.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}
