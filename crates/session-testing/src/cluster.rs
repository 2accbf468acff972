//! A local Redis Cluster of three masters.

use std::fmt;
use std::process::Command;
use std::time::Duration;

use crate::process::{self, binary};
use crate::resp::{self, Reply};
use crate::{RedisServer, RedisServerBuilder};

/// How long the cluster may take to agree on its slots after creation.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);

/// A three-master Redis Cluster (no replicas) on free loopback ports, every
/// slot assigned. Each node also gets a free port for the cluster bus
/// (`cluster-port`), so nothing collides with other tests. All nodes are
/// killed when dropped.
///
/// ```no_run
/// use session_testing::RedisCluster;
///
/// let cluster = RedisCluster::start();
/// // "redis-cluster://127.0.0.1:<p1>?node=127.0.0.1:<p2>&node=127.0.0.1:<p3>"
/// let url = cluster.url();
/// # drop(url);
/// ```
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, joins them with `redis-cli --cluster create`, and
    /// waits until every node reports `cluster_state:ok`.
    ///
    /// # Panics
    ///
    /// When `redis-server` or `redis-cli` is missing (the message says what
    /// to install), or the cluster does not form within its timeouts.
    #[track_caller]
    pub fn start() -> RedisCluster {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start() -> Result<RedisCluster, String> {
        let cli = binary("redis-cli")?;
        let nodes = (0..3)
            .map(|_| {
                let bus_port = process::free_port()?;
                let extra = format!(
                    "cluster-enabled yes\ncluster-config-file nodes.conf\n\
                     cluster-node-timeout 5000\ncluster-port {bus_port}\n"
                );
                RedisServer::launch(&RedisServerBuilder::default(), &extra)
            })
            .collect::<Result<Vec<_>, String>>()?;
        let output = Command::new(cli)
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .map_err(|e| format!("could not run redis-cli: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        for node in &nodes {
            process::wait_for("cluster_state:ok", CONVERGE_TIMEOUT, || {
                let info = match resp::command(node.port(), &["CLUSTER", "INFO"]) {
                    Ok(reply) => reply.text().unwrap_or_default(),
                    Err(e) => return Err(e.to_string()),
                };
                let ok = resp::info_fields(&info).any(|f| f == ("cluster_state", "ok"))
                    && resp::info_fields(&info).any(|f| f == ("cluster_known_nodes", "3"));
                if ok { Ok(()) } else { Err(info) }
            })?;
        }
        Ok(RedisCluster { nodes })
    }

    /// The nodes, in the order their slot ranges were assigned.
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes, to kill or restart one.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// A `redis-cluster://` URL naming every node, as fred parses it.
    #[must_use]
    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.nodes[0].port());
        for (i, node) in self.nodes[1..].iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", node.port()));
        }
        url
    }

    /// Sends one command to every node and returns the replies, in node
    /// order (e.g. `INFO commandstats` summed over the cluster).
    ///
    /// # Errors
    ///
    /// When a node cannot be reached.
    pub fn command_all(&self, args: &[&str]) -> std::io::Result<Vec<Reply>> {
        self.nodes.iter().map(|node| node.command(args)).collect()
    }
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("nodes", &self.nodes)
            .finish()
    }
}
