//! A local Redis Cluster of three masters, optionally each with replicas.

use std::fmt;
use std::ops::RangeInclusive;
use std::process::Command;
use std::time::Duration;

use crate::process::{self, binary};
use crate::resp::{self, Reply};
use crate::{RedisServer, RedisServerBuilder};

/// How long the cluster may take to agree on its slots after creation.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The cluster's `cluster-node-timeout` unless set otherwise.
const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// A three-master Redis Cluster on free loopback ports, every slot
/// assigned; without replicas unless [`RedisClusterBuilder::replicas`]
/// asks for some. Each node also gets a free port for the cluster bus
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
///
/// A master killed under a cluster with replicas fails over to its
/// replica, and comes back as a replica of it:
///
/// ```no_run
/// use std::time::Duration;
/// use session_testing::RedisCluster;
///
/// let mut cluster = RedisCluster::builder()
///     .replicas(1)
///     .node_timeout(Duration::from_secs(2))
///     .start();
/// let victim = cluster.master_indexes()[0];
/// cluster.kill_master(victim);
/// let promoted = cluster.wait_for_failover(Duration::from_secs(30));
/// cluster.nodes_mut()[victim].restart();
/// cluster.wait_until_replica(victim, Duration::from_secs(30));
/// # drop(promoted);
/// ```
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// The master [`kill_master`](Self::kill_master) killed, and its
    /// replicas.
    failed_over: Option<(usize, Vec<usize>)>,
}

/// Options for a [`RedisCluster`]; see [`RedisCluster::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisClusterBuilder {
    replicas: usize,
    node_timeout: Duration,
}

impl Default for RedisClusterBuilder {
    fn default() -> Self {
        RedisClusterBuilder {
            replicas: 0,
            node_timeout: DEFAULT_NODE_TIMEOUT,
        }
    }
}

impl RedisClusterBuilder {
    /// Replicas per master (default none): `3 * (1 + replicas)` nodes.
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// `cluster-node-timeout` (default 5 s): how long a master must be
    /// unreachable before its replica takes over.
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }

    /// Starts the nodes, joins them with `redis-cli --cluster create`, and
    /// waits until every node reports `cluster_state:ok` and every replica
    /// is in sync with its master.
    ///
    /// # Panics
    ///
    /// When `redis-server` or `redis-cli` is missing (the message says what
    /// to install), or the cluster does not form within its timeouts.
    #[track_caller]
    pub fn start(self) -> RedisCluster {
        RedisCluster::try_start(&self).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// One line of `CLUSTER NODES`.
pub(crate) struct NodeLine {
    id: String,
    master_id: Option<String>,
    port: u16,
    pub(crate) flags: Vec<String>,
    /// The slots the node serves, `a-b` or `a` (not those being migrated,
    /// `[…]`).
    pub(crate) slots: Vec<RangeInclusive<u16>>,
}

impl NodeLine {
    pub(crate) fn parse(line: &str) -> Option<NodeLine> {
        let mut fields = line.split_whitespace();
        let id = fields.next()?.to_owned();
        let addr = fields.next()?;
        let port = addr
            .split(['@', ','])
            .next()?
            .rsplit(':')
            .next()?
            .parse()
            .ok()?;
        let flags = fields.next()?.split(',').map(str::to_owned).collect();
        let master_id = Some(fields.next()?.to_owned()).filter(|m| m != "-");
        // ping-sent, pong-recv, config-epoch, link-state, then the slots.
        let slots = fields
            .skip(4)
            .filter(|range| !range.starts_with('['))
            .filter_map(|range| match range.split_once('-') {
                Some((a, b)) => Some(a.parse().ok()?..=b.parse().ok()?),
                None => range.parse().ok().map(|slot| slot..=slot),
            })
            .collect();
        Some(NodeLine {
            id,
            master_id,
            port,
            flags,
            slots,
        })
    }

    fn is_live_master(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
            && !self.flags.iter().any(|f| f == "fail" || f == "fail?")
    }
}

impl RedisCluster {
    /// A cluster of three masters without replicas; see
    /// [`RedisClusterBuilder::start`].
    ///
    /// # Panics
    ///
    /// As [`RedisClusterBuilder::start`].
    #[track_caller]
    pub fn start() -> RedisCluster {
        Self::builder().start()
    }

    /// Options for a cluster to start.
    pub fn builder() -> RedisClusterBuilder {
        RedisClusterBuilder::default()
    }

    fn try_start(options: &RedisClusterBuilder) -> Result<RedisCluster, String> {
        let cli = binary("redis-cli")?;
        let count = 3 * (1 + options.replicas);
        let nodes = (0..count)
            .map(|_| {
                let bus_port = process::free_port()?;
                let extra = format!(
                    "cluster-enabled yes\ncluster-config-file nodes.conf\n\
                     cluster-node-timeout {}\ncluster-port {bus_port}\n\
                     repl-diskless-sync-delay 0\n",
                    options.node_timeout.as_millis()
                );
                RedisServer::launch(&RedisServerBuilder::default(), &extra)
            })
            .collect::<Result<Vec<_>, String>>()?;
        let output = Command::new(cli)
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .args(["--cluster-replicas", &options.replicas.to_string()])
            .arg("--cluster-yes")
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
        let known = count.to_string();
        for node in &nodes {
            process::wait_for("cluster_state:ok", CONVERGE_TIMEOUT, || {
                let info = cluster_info(node.port())?;
                let ok = resp::info_fields(&info).any(|f| f == ("cluster_state", "ok"))
                    && resp::info_fields(&info).any(|f| f == ("cluster_known_nodes", &*known));
                if ok { Ok(()) } else { Err(info) }
            })?;
        }
        let cluster = RedisCluster {
            nodes,
            failed_over: None,
        };
        // Every node sees every replica as one, and each is in sync.
        let replicas = 3 * options.replicas;
        for node in &cluster.nodes {
            process::wait_for("every replica to join", CONVERGE_TIMEOUT, || {
                let seen = match node.command(&["CLUSTER", "NODES"]) {
                    Ok(Reply::Bulk(text)) => String::from_utf8_lossy(&text)
                        .lines()
                        .filter_map(NodeLine::parse)
                        .filter(|l| l.flags.iter().any(|f| f == "slave"))
                        .count(),
                    other => return Err(format!("{other:?}")),
                };
                if seen == replicas {
                    Ok(())
                } else {
                    Err(format!("{seen} replicas"))
                }
            })?;
        }
        for index in cluster.replica_indexes() {
            cluster.nodes[index].wait_for_sync(CONVERGE_TIMEOUT);
        }
        Ok(cluster)
    }

    /// The nodes, in the order they were started (with replicas, the
    /// masters are not necessarily the first three: see
    /// [`master_indexes`](Self::master_indexes)).
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

    /// The indexes (in [`nodes`](Self::nodes)) of the nodes that serve
    /// slots as masters now, as the first node that answers sees it.
    #[must_use]
    pub fn master_indexes(&self) -> Vec<usize> {
        let lines = self.node_lines().unwrap_or_default();
        self.indexes_where(&lines, |line| {
            line.is_live_master() && !line.slots.is_empty()
        })
    }

    /// The indexes of the nodes that are replicas now.
    #[must_use]
    pub fn replica_indexes(&self) -> Vec<usize> {
        let lines = self.node_lines().unwrap_or_default();
        self.indexes_where(&lines, |line| line.flags.iter().any(|f| f == "slave"))
    }

    fn indexes_where(&self, lines: &[NodeLine], keep: impl Fn(&NodeLine) -> bool) -> Vec<usize> {
        let ports: Vec<u16> = lines.iter().filter(|l| keep(l)).map(|l| l.port).collect();
        (0..self.nodes.len())
            .filter(|&i| ports.contains(&self.nodes[i].port()))
            .collect()
    }

    /// `CLUSTER NODES` from the first node that answers.
    fn node_lines(&self) -> Result<Vec<NodeLine>, String> {
        let mut last_error = "no node".to_owned();
        for node in &self.nodes {
            match node.command(&["CLUSTER", "NODES"]) {
                Ok(Reply::Bulk(text)) => {
                    return Ok(String::from_utf8_lossy(&text)
                        .lines()
                        .filter_map(NodeLine::parse)
                        .collect());
                }
                other => last_error = format!("{other:?}"),
            }
        }
        Err(last_error)
    }

    /// Kills the node at `index` (in [`nodes`](Self::nodes)), a master,
    /// with SIGKILL, remembering its replicas for
    /// [`wait_for_failover`](Self::wait_for_failover).
    pub fn kill_master(&mut self, index: usize) {
        let lines = self.node_lines().unwrap_or_default();
        let id = lines
            .iter()
            .find(|l| l.port == self.nodes[index].port())
            .map(|l| l.id.clone());
        let replica_ports: Vec<u16> = lines
            .iter()
            .filter(|l| id.is_some() && l.master_id == id)
            .map(|l| l.port)
            .collect();
        self.failed_over = Some((
            index,
            (0..self.nodes.len())
                .filter(|&i| replica_ports.contains(&self.nodes[i].port()))
                .collect(),
        ));
        self.nodes[index].kill();
    }

    /// After [`kill_master`](Self::kill_master): waits until one of the
    /// killed master's replicas is master and every live node reports
    /// `cluster_state:ok`, and returns that replica's index.
    ///
    /// # Panics
    ///
    /// When no master was killed, or the failover does not complete within
    /// `timeout`.
    #[track_caller]
    pub fn wait_for_failover(&self, timeout: Duration) -> usize {
        let Some((killed, replicas)) = &self.failed_over else {
            panic!("wait_for_failover: no master was killed");
        };
        process::wait_for("the cluster to fail over", timeout, || {
            let promoted = replicas
                .iter()
                .copied()
                .find(|&i| self.nodes[i].role().as_deref() == Some("master"))
                .ok_or("no replica of the killed master is master yet")?;
            for (index, node) in self.nodes.iter().enumerate() {
                if index == *killed {
                    continue;
                }
                let info = cluster_info(node.port())?;
                if !resp::info_fields(&info).any(|f| f == ("cluster_state", "ok")) {
                    return Err(format!("node {} is not ok yet", node.port()));
                }
            }
            Ok(promoted)
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until the node at `index` (a master that was killed and
    /// restarted) is a replica in sync with its new master.
    ///
    /// # Panics
    ///
    /// When it is not within `timeout`.
    #[track_caller]
    pub fn wait_until_replica(&self, index: usize, timeout: Duration) {
        let node = &self.nodes[index];
        process::wait_for(
            "the restarted node to become a replica",
            timeout,
            || match node.role().as_deref() {
                Some("slave") => Ok(()),
                other => Err(format!("role {other:?}")),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        node.wait_for_sync(timeout);
    }
}

fn cluster_info(port: u16) -> Result<String, String> {
    match resp::command(port, &["CLUSTER", "INFO"]) {
        Ok(reply) => Ok(reply.text().unwrap_or_default()),
        Err(e) => Err(e.to_string()),
    }
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("nodes", &self.nodes)
            .finish()
    }
}
