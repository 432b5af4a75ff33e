//! Three JetStream nodes routed together on loopback.

use std::time::Duration;

use crate::process::free_port;
use crate::server::{ClusterSpec, NatsServer};

/// A three-node JetStream cluster on loopback. Any node can be killed and
/// restarted; dropping the cluster kills every node and deletes the stores.
///
/// ```no_run
/// let mut cluster = shardline_harness::NatsCluster::start();
/// cluster.kill(1);
/// cluster.restart(1);
/// ```
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three nodes and waits until JetStream is healthy on each.
    pub fn start() -> Self {
        let mut last_error = String::new();
        for _ in 0..5 {
            match Self::try_start(3) {
                Ok(cluster) => return cluster,
                Err(error) => last_error = error,
            }
        }
        panic!("nats cluster did not start: {last_error}")
    }

    fn try_start(size: usize) -> Result<Self, String> {
        let name = format!("shardline-{}", free_port());
        let client_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let mut nodes: Vec<NatsServer> = (0..size)
            .map(|i| {
                let spec = ClusterSpec {
                    name: name.clone(),
                    port: route_ports[i],
                    routes: route_ports
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, port)| *port)
                        .collect(),
                };
                NatsServer::unstarted(&format!("n{}", i + 1), client_ports[i], Some(spec))
            })
            .collect();
        for node in &mut nodes {
            node.launch(false)?;
        }
        let cluster = Self { nodes };
        for node in &cluster.nodes {
            if !node.wait_healthy(crate::START_TIMEOUT) {
                return Err(format!(
                    "node {} not healthy; log:\n{}",
                    node.name(),
                    node.log_tail()
                ));
            }
        }
        Ok(cluster)
    }

    /// Every node's URL, comma-separated (what clients connect to).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One node.
    pub fn node(&self, index: usize) -> &NatsServer {
        &self.nodes[index]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always `false`: a cluster has nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Kills one node with SIGKILL; its store is kept.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Restarts a node on the same ports and store, and waits until it is healthy.
    pub fn restart(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        node.restart();
        if !node.wait_healthy(crate::START_TIMEOUT) {
            panic!(
                "node {} not healthy after restart:\n{}",
                node.name(),
                node.log_tail()
            );
        }
    }

    /// Connects a client that knows every node's URL.
    pub async fn client(&self) -> async_nats::Client {
        let urls: Vec<String> = self.nodes.iter().map(NatsServer::url).collect();
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(urls)
            .await
            .expect("the harness cluster accepts clients")
    }
}
